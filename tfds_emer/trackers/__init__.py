"""Eye-tracker recordings of any supported format, read into one schema (`schema`)."""
