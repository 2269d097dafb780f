"""What the validators print: a report's sections, then one closing line."""


def count(n: int, noun: str) -> str:
  return f"{n} {noun}{'' if n == 1 else 's'}"


def text(title: str, information: list, sections, warnings: list, problems: list, summary) -> str:
  """`title`, the information; each (heading, lines) of `sections` with lines, indented; the
  warnings and the defects, if any; `summary`."""
  sections = [*sections, (f"warnings ({len(warnings)}):", warnings)]
  sections.append((f"defects ({len(problems)}):", problems))
  out = [title, "information:"] + [f"  {x}" for x in information]
  for heading, lines in sections:
    if lines:
      out += [heading] + [f"  {x}" for x in lines]
  out.append(summary)
  return "\n".join(out)


def summary(ok: bool, total: int, readable: int, noun: str, warnings: list, problems: list) -> str:
  """`OK: …` or `FAILED: …; the build would stop.`, counting the items, defects and warnings."""
  counts = f"{count(len(problems), 'defect')}, {count(len(warnings), 'warning')}"
  if ok:
    return f"OK: {count(total, noun)}, {counts}"
  return f"FAILED: {count(readable, f'readable {noun}')}, {counts}; the build would stop."
