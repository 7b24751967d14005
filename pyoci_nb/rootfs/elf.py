"""A small ELF reader: just what is needed to copy a dynamically linked program into a root filesystem.

It reads the ELF header, the program headers and the dynamic section (standard library ``struct``
only) and answers three questions:

* which ELF interpreter (``PT_INTERP``, the dynamic loader such as
  ``/lib64/ld-linux-x86-64.so.2``) the kernel starts for the program -- none for a static binary;
* which shared libraries it needs (``DT_NEEDED``) and where its own search path says to look
  (``DT_RPATH`` / ``DT_RUNPATH``, with ``$ORIGIN`` expanded);
* whether two objects can be loaded together (same ELF class, byte order and machine).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from pyoci_nb.errors import RootfsError

_PT_LOAD, _PT_DYNAMIC, _PT_INTERP = 1, 2, 3
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 15, 29


@dataclass
class ElfInfo:
    """What the loader needs to know about one ELF file."""

    path: str
    elf_class: int          # 1 = 32-bit, 2 = 64-bit
    byte_order: str         # "<" little endian, ">" big endian
    machine: int            # e_machine (62 = x86-64, 183 = aarch64 ...)
    interpreter: str | None = None
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)

    @property
    def is_static(self) -> bool:
        """True when the kernel runs the file without a dynamic loader (no ``PT_INTERP``)."""
        return self.interpreter is None

    def compatible_with(self, other: ElfInfo) -> bool:
        """Whether ``other`` can be loaded into the same process (class, byte order, machine)."""
        return (self.elf_class, self.byte_order, self.machine) == (
            other.elf_class, other.byte_order, other.machine)

    def search_dirs(self) -> list[str]:
        """The object's own library directories, in the order glibc's loader tries them:
        ``DT_RPATH`` only when there is no ``DT_RUNPATH``, then ``DT_RUNPATH``."""
        own = [] if self.runpath else list(self.rpath)
        return own + list(self.runpath)


def is_elf(path: str) -> bool:
    """True when ``path`` is a regular file starting with the ELF magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def read_elf(path: str) -> ElfInfo:
    """Parse ``path``'s headers; raises ``RootfsError`` naming the file if it is not a valid ELF."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise RootfsError(f"cannot read {path}", where=path, why=e.strerror) from e
    try:
        return _parse(path, data)
    except (struct.error, IndexError, ValueError) as e:
        raise RootfsError("not a valid ELF file", where=path, why=str(e)) from e


def _parse(path: str, data: bytes) -> ElfInfo:
    if data[:4] != b"\x7fELF":
        raise ValueError("missing the \\x7fELF magic")
    elf_class, encoding = data[4], data[5]
    if elf_class not in (1, 2) or encoding not in (1, 2):
        raise ValueError(f"unknown ELF class {elf_class} or data encoding {encoding}")
    bo = "<" if encoding == 1 else ">"
    if elf_class == 2:
        machine, = struct.unpack_from(bo + "H", data, 18)
        phoff, = struct.unpack_from(bo + "Q", data, 32)
        phentsize, phnum = struct.unpack_from(bo + "HH", data, 54)
        ph_format = bo + "IIQQQQQQ"    # type, flags, offset, vaddr, paddr, filesz, memsz, align
    else:
        machine, = struct.unpack_from(bo + "H", data, 18)
        phoff, = struct.unpack_from(bo + "I", data, 28)
        phentsize, phnum = struct.unpack_from(bo + "HH", data, 42)
        ph_format = bo + "IIIIIIII"    # type, offset, vaddr, paddr, filesz, memsz, flags, align
    info = ElfInfo(path, elf_class, bo, machine)

    loads: list[tuple[int, int, int]] = []   # (vaddr, filesz, offset)
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        fields = struct.unpack_from(ph_format, data, phoff + i * phentsize)
        if elf_class == 2:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = fields[:6]
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = fields[:5]
        if p_type == _PT_INTERP:
            info.interpreter = data[p_offset:p_offset + p_filesz].split(b"\0", 1)[0].decode()
        elif p_type == _PT_LOAD:
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return info

    entry_format = bo + ("qQ" if elf_class == 2 else "iI")
    entry_size = struct.calcsize(entry_format)
    entries: list[tuple[int, int]] = []
    offset, size = dynamic
    for pos in range(offset, offset + size - entry_size + 1, entry_size):
        tag, value = struct.unpack_from(entry_format, data, pos)
        if tag == _DT_NULL:
            break
        entries.append((tag, value))
    strtab_addr = next((v for t, v in entries if t == _DT_STRTAB), None)
    if strtab_addr is None:
        return info
    strtab = _file_offset(loads, strtab_addr)

    def string(index: int) -> str:
        start = strtab + index
        return data[start:data.index(b"\0", start)].decode()

    origin = os.path.dirname(os.path.abspath(path))
    for tag, value in entries:
        if tag == _DT_NEEDED:
            info.needed.append(string(value))
        elif tag in (_DT_RPATH, _DT_RUNPATH):
            dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin)
                    for d in string(value).split(":") if d]
            (info.rpath if tag == _DT_RPATH else info.runpath).extend(dirs)
    return info


def _file_offset(loads: list[tuple[int, int, int]], address: int) -> int:
    """Translate a virtual address (as stored in the dynamic section) into a file offset."""
    for vaddr, filesz, offset in loads:
        if vaddr <= address < vaddr + filesz:
            return address - vaddr + offset
    raise ValueError(f"address {address:#x} is in no PT_LOAD segment")
