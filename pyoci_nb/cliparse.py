"""The command-line grammar of runc (urfave/cli), for ``pyoci``: global flags, a command, the
command's flags and positional arguments.

* ``--flag=value`` and ``--flag value``; short names ``-b value``, ``-bvalue``, ``-b=value``;
  single-letter switches combine (``-fa``).  A flag's value is the next word whatever it looks
  like (``--memory-swap -1``), as with runc.
* Switches take no value, or an explicit one: ``--detach=false``, ``-d=false``.
* Flags may come before or after the positional arguments; ``--`` ends the flags.  A trailing
  *rest* argument (``exec ID COMMAND...``) takes every word after the positionals before it.
* ``-h``/``--help`` prints the help of the command (or of ``pyoci``) and exits 0; a usage error
  prints what is wrong and the usage line on stderr and exits 2, like argparse.

It replaces argparse because argparse imports ``re``, ``gettext`` and ``locale`` and builds its
actions on every run: more than a third of ``pyoci state`` on a small machine.  Standard library
only, no imports.
"""

from __future__ import annotations

import os
import sys


class Flag:
    """One option: ``names`` (``"--bundle -b"``), what it does, and how it parses.

    ``kind``: ``switch`` (no value; True when given), ``value`` (a string), ``int``, ``list``
    (repeatable, strings) or ``int-list``.  ``choices`` limits the values; ``hidden`` keeps it
    out of the help (accepted for compatibility)."""

    def __init__(self, names: str, help: str, *, kind: str = "value", default=None,
                 choices: tuple[str, ...] | None = None, dest: str | None = None,
                 metavar: str | None = None, hidden: bool = False):
        self.names = names.split()
        self.help = help
        self.kind = kind
        self.default = [] if kind in ("list", "int-list") and default is None else default
        if kind == "switch" and default is None:
            self.default = False
        self.choices = choices
        self.dest = dest or self.names[0].lstrip("-").replace("-", "_")
        self.metavar = metavar or self.dest.upper()
        self.hidden = hidden

    @property
    def takes_value(self) -> bool:
        return self.kind != "switch"

    def label(self) -> str:
        names = ", ".join(sorted(self.names, key=len))
        return names if not self.takes_value else f"{names} {self.metavar}"


class Positional:
    """A positional argument: ``required``, optional (with a default) or ``rest`` (every word
    after the positionals before it)."""

    def __init__(self, dest: str, metavar: str, help: str, *, required: bool = True,
                 default=None, rest: bool = False):
        self.dest = dest
        self.metavar = metavar
        self.help = help
        self.required = required and not rest
        self.default = [] if rest else default
        self.rest = rest

    def label(self) -> str:
        if self.rest:
            return f"[{self.metavar}...]"
        return self.metavar if self.required else f"[{self.metavar}]"


class Command:
    """A command: its name, one-line help, flags and positional arguments."""

    def __init__(self, name: str, help: str, flags: tuple[Flag, ...] = (),
                 positionals: tuple[Positional, ...] = ()):
        self.name = name
        self.help = help
        self.flags = flags
        self.positionals = positionals


class Arguments:
    """The parsed command line: one attribute per flag and positional (and ``command``)."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Arguments({inner})"


class UsageError(Exception):
    """A command line that does not parse: what is wrong, and for which command."""

    def __init__(self, message: str, command: Command | None = None):
        super().__init__(message)
        self.command = command


class HelpRequested(Exception):
    """``-h``/``--help``: the help of ``command`` (None: of the program)."""

    def __init__(self, command: Command | None):
        super().__init__("help")
        self.command = command


class Parser:
    """``prog [global flags] COMMAND [flags] ARGS``."""

    def __init__(self, prog: str, description: str, global_flags: tuple[Flag, ...],
                 commands: tuple[Command, ...]):
        self.prog = prog
        self.description = description
        self.global_flags = global_flags
        self.commands = {c.name: c for c in commands}

    # --- parsing ------------------------------------------------------------------------------
    def parse(self, argv: list[str]) -> Arguments:
        """The Arguments of ``argv``; UsageError or HelpRequested otherwise."""
        values = {f.dest: _copy(f.default) for f in self.global_flags}
        values["command"] = None
        i = self._parse_flags(argv, 0, self.global_flags, values, None)
        if i >= len(argv):
            return Arguments(**values)  # no command: the caller decides (--version, or help)
        name = argv[i]
        command = self.commands.get(name)
        if command is None:
            raise UsageError(f"unknown command {name!r} (commands: {', '.join(self.commands)})")
        values["command"] = name
        for flag in command.flags:
            values[flag.dest] = _copy(flag.default)
        words: list[str] = []
        i += 1
        rest = next((p for p in command.positionals if p.rest), None)
        fixed = len([p for p in command.positionals if not p.rest])
        while i < len(argv):
            if rest is not None and len(words) >= fixed:
                if not words and argv[i] in ("-h", "--help"):
                    raise HelpRequested(command)  # a command of only a rest: its help first
                words.extend(argv[i:])  # COMMAND and its own flags: no longer ours
                break
            word = argv[i]
            if word == "--":
                words.extend(argv[i + 1:])
                break
            if word.startswith("-") and word != "-":
                i = self._parse_flags(argv, i, command.flags, values, command)
                continue
            words.append(word)
            i += 1
        self._assign(command, words, values)
        return Arguments(**values)

    def _parse_flags(self, argv: list[str], i: int, flags: tuple[Flag, ...], values: dict,
                     command: Command | None) -> int:
        """Parse consecutive flags from ``argv[i]``; returns the index of the first non-flag."""
        by_name = {name: f for f in flags for name in f.names}
        while i < len(argv):
            word = argv[i]
            if word in ("-h", "--help"):
                raise HelpRequested(command)
            if not word.startswith("-") or word in ("-", "--"):
                return i
            if word.startswith("--"):
                name, has_value, value = word.partition("=")
                flag = by_name.get(name)
                if flag is None:
                    raise UsageError(f"unknown flag {name}", command)
                if flag.takes_value and not has_value:
                    if i + 1 >= len(argv):
                        raise UsageError(f"flag {name} needs a value", command)
                    i += 1
                    value = argv[i]
                self._store(flag, name, value if (has_value or flag.takes_value) else None, values, command)
                i += 1
                continue
            # short flags: -b VALUE, -bVALUE, -b=VALUE, -fa, -d=false
            letters = word[1:]
            while letters:
                name = "-" + letters[0]
                flag = by_name.get(name)
                if flag is None:
                    raise UsageError(f"unknown flag {name}" + (f" (in {word})" if len(word) > 2 else ""), command)
                letters = letters[1:]
                if flag.takes_value:
                    if letters:
                        value = letters[1:] if letters.startswith("=") else letters
                    elif i + 1 < len(argv):
                        i += 1
                        value = argv[i]
                    else:
                        raise UsageError(f"flag {name} needs a value", command)
                    self._store(flag, name, value, values, command)
                    letters = ""
                elif letters.startswith("="):  # -d=false: an explicit value, as --detach=false
                    self._store(flag, name, letters[1:], values, command)
                    letters = ""
                else:
                    self._store(flag, name, None, values, command)
            i += 1
        return i

    @staticmethod
    def _store(flag: Flag, name: str, value: str | None, values: dict, command: Command | None) -> None:
        if flag.kind == "switch":
            if value is None or value.lower() in ("true", "1", "t", "yes"):
                values[flag.dest] = True
            elif value.lower() in ("false", "0", "f", "no"):
                values[flag.dest] = False
            else:
                raise UsageError(f"flag {name} is a switch: it takes no value, or true/false (got {value!r})", command)
            return
        if flag.choices and value not in flag.choices:
            raise UsageError(f"flag {name}: invalid choice {value!r} (choose from {', '.join(flag.choices)})", command)
        if flag.kind in ("int", "int-list"):
            try:
                value = int(value)
            except ValueError:
                raise UsageError(f"flag {name} needs a whole number, not {value!r}", command) from None
        if flag.kind in ("list", "int-list"):
            values[flag.dest] = values[flag.dest] + [value]
        else:
            values[flag.dest] = value

    @staticmethod
    def _assign(command: Command, words: list[str], values: dict) -> None:
        queue = list(words)
        for positional in command.positionals:
            if positional.rest:
                values[positional.dest] = queue
                queue = []
            elif queue:
                values[positional.dest] = queue.pop(0)
            elif positional.required:
                raise UsageError(f"missing {positional.metavar}", command)
            else:
                values[positional.dest] = positional.default
        if queue:
            raise UsageError(f"unexpected argument{'s' if len(queue) > 1 else ''}: {' '.join(queue)}", command)

    # --- help ---------------------------------------------------------------------------------
    def usage(self, command: Command | None = None) -> str:
        """The one-line usage of the program or of ``command``."""
        if command is None:
            return f"usage: {self.prog} [global flags] COMMAND [flags] [ARGS...]"
        parts = [self.prog, command.name] + (["[flags]"] if command.flags else [])
        parts += [p.label() for p in command.positionals]
        return "usage: " + " ".join(parts)

    def help(self, command: Command | None = None) -> str:
        """The help text of the program or of ``command`` (as wide as the terminal)."""
        width = _terminal_width()
        lines = [self.usage(command), ""]
        if command is None:
            lines += _wrap(self.description, width, "") + ["", "commands:"]
            lines += _table([(c.name, c.help) for c in self.commands.values()], width)
            lines += ["", "global flags:"]
            lines += _table([(f.label(), _flag_help(f)) for f in self.global_flags if not f.hidden], width)
            lines += ["", f"Run '{self.prog} COMMAND --help' for the flags of a command."]
        else:
            lines += _wrap(command.help, width, "")
            if command.positionals:
                lines += ["", "arguments:"]
                lines += _table([(p.label(), p.help) for p in command.positionals], width)
            if command.flags:
                lines += ["", "flags:"]
                lines += _table([(f.label(), _flag_help(f)) for f in command.flags if not f.hidden], width)
        return "\n".join(lines) + "\n"


def _copy(value):
    return list(value) if isinstance(value, list) else value


def _flag_help(flag: Flag) -> str:
    text = flag.help
    if flag.choices:
        text += f" (one of: {', '.join(flag.choices)})"
    if flag.kind in ("list", "int-list"):
        text += " (repeatable)"
    return text


def _terminal_width() -> int:
    """``shutil.get_terminal_size``'s rule without shutil: $COLUMNS, the terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 80
    return max(columns, 40)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    lines, line = [], indent
    for word in text.split():
        if len(line) + len(word) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += word + " "
    if line.strip():
        lines.append(line.rstrip())
    return lines or [indent]


def _table(rows: list[tuple[str, str]], width: int) -> list[str]:
    column = min(max((len(left) for left, _ in rows), default=0) + 4, 32)
    lines = []
    for left, right in rows:
        head = "  " + left
        body = _wrap(right, width, " " * column)
        if len(head) + 2 <= column:
            lines.append(head.ljust(column) + body[0].lstrip())
            lines += body[1:]
        else:
            lines.append(head)
            lines += body
    return lines
