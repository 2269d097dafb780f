"""Reading PyTorch `torch.save` files (zip of a pickle plus raw storages) without PyTorch.

Only what state dicts need is reconstructed: `collections.OrderedDict`, tensors built by
`torch._utils._rebuild_tensor_v2` / `_rebuild_parameter` over typed storages. Anything else in
the pickle is refused, so a checkpoint cannot run code on load.
"""

import collections
import os
import pickle
import zipfile

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
  "DoubleStorage": np.float64,
  "FloatStorage": np.float32,
  "HalfStorage": np.float16,
  "BFloat16Storage": ml_dtypes.bfloat16,
  "LongStorage": np.int64,
  "IntStorage": np.int32,
  "ShortStorage": np.int16,
  "CharStorage": np.int8,
  "ByteStorage": np.uint8,
  "BoolStorage": np.bool_,
}


class _StorageType:
  def __init__(self, name):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, meta=None):
  itemsize = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(
    storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
  )
  return np.array(view)


def _rebuild_parameter(data, requires_grad=False, hooks=None):
  return data


_ALLOWED = {
  ("collections", "OrderedDict"): collections.OrderedDict,
  ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
  ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _StateDictUnpickler(pickle.Unpickler):
  def __init__(self, file, archive: zipfile.ZipFile, prefix: str, byteorder: str):
    super().__init__(file)
    self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
    self._storages = {}

  def find_class(self, module, name):
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) in _ALLOWED:
      return _ALLOWED[module, name]
    raise pickle.UnpicklingError(
      f"Refusing to load {module}.{name} from a checkpoint: only state dicts of tensors are read."
    )

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
      raise pickle.UnpicklingError(f"Unsupported persistent id {pid!r}.")
    _, storage_type, key, _location, numel = pid
    if key not in self._storages:
      raw = self._archive.read(f"{self._prefix}/data/{key}")
      dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
      self._storages[key] = np.frombuffer(raw, dtype, count=numel).astype(storage_type.dtype)
    return self._storages[key]


def load_torch_file(path) -> dict:
  """The object a `torch.save` zip archive holds, with tensors as NumPy arrays."""
  if not zipfile.is_zipfile(path):
    with open(path, "rb") as f:
      if f.read(4) == b"PK\x03\x04":  # a zip archive's first entry, without the archive's end
        raise ValueError(
          f"{path} is truncated or damaged: it starts as a zip archive (as torch.save writes) "
          f"but its end is missing ({os.path.getsize(path)} bytes). Download or copy it again."
        )
    raise ValueError(
      f"{path} is not a zip-format PyTorch file (torch.save since 1.6); re-save it with "
      "torch.save(obj, path) or convert it to .npz."
    )
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
    if len(pickles) != 1:
      raise ValueError(f"{path}: expected one */data.pkl in the archive, found {pickles}.")
    prefix = pickles[0][: -len("/data.pkl")]
    names = set(archive.namelist())
    byteorder = "little"
    if f"{prefix}/byteorder" in names:
      byteorder = archive.read(f"{prefix}/byteorder").decode().strip()
    try:
      with archive.open(pickles[0]) as f:
        return _StateDictUnpickler(f, archive, prefix, byteorder).load()
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, KeyError) as e:
      raise ValueError(
        f"{path}: cannot read {pickles[0]} in the archive ({type(e).__name__}: {e}); the file "
        "is damaged or was not written by torch.save. Re-download or re-save it."
      ) from None
