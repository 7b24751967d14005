"""The ``pyoci`` command-line grammar (``pyoci_nb/cliparse.py`` through ``pyoci_nb/cli.py``).

Parsing is checked with ``build_parser().parse(argv)``; what the user sees (exit status, stdout,
stderr) with ``cli.main(argv)``, which only reaches a command handler for the two ``exec``
checks at the end (they fail before touching any container).  No container is created here.
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

import pyoci_nb
from pyoci_nb import cli
from pyoci_nb.cliparse import HelpRequested, UsageError
from runtime_helpers import modules_loaded_by

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def parser():
    return cli.build_parser()


@pytest.fixture(autouse=True)
def _fixed_width(monkeypatch):
    """Help is as wide as $COLUMNS: make it the same on every terminal."""
    monkeypatch.setenv("COLUMNS", "80")


def parse(*argv: str):
    return cli.build_parser().parse(list(argv))


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# --- flag values --------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["create", "--bundle=/b", "ID"],
    ["create", "--bundle", "/b", "ID"],
    ["create", "-b", "/b", "ID"],
    ["create", "-b/b", "ID"],
    ["create", "-b=/b", "ID"],
    ["create", "ID", "--bundle", "/b"],
    ["create", "ID", "-b=/b"],
])
def test_flag_value_spellings(argv):
    args = parse(*argv)
    assert (args.command, args.bundle, args.container_id) == ("create", "/b", "ID")


def test_flag_defaults_when_absent():
    args = parse("create", "ID")
    assert args.bundle == "." and args.pid_file is None and args.console_socket is None
    assert args.preserve_fds == 0 and args.no_pivot is False and args.no_new_keyring is False


def test_equals_in_a_value_is_kept():
    assert parse("exec", "--env=A=B=C", "ID").env == ["A=B=C"]
    assert parse("exec", "-eK=V", "ID").env == ["K=V"]
    assert parse("exec", "-e=K=V", "ID").env == ["K=V"]


def test_empty_value_with_equals():
    assert parse("create", "--pid-file=", "ID").pid_file == ""


def test_value_that_looks_like_a_flag_is_the_value():
    args = parse("update", "--memory-swap", "-1", "ID")
    assert args.memory_swap == "-1" and args.container_id == "ID"
    args = parse("create", "--pid-file", "--bundle", "ID")
    assert args.pid_file == "--bundle" and args.bundle == "." and args.container_id == "ID"
    assert parse("update", "-r", "-", "ID").resources == "-"


# --- switches -----------------------------------------------------------------------------


def test_switches():
    assert parse("delete", "-f", "ID").force is True
    assert parse("delete", "--force", "ID").force is True
    assert parse("delete", "ID").force is False
    args = parse("kill", "-a", "ID", "9")
    assert (args.all, args.container_id, args.signal) == (True, "ID", "9")


def test_combined_short_switches_and_value():
    args = parse("exec", "-td", "ID", "true")
    assert args.tty is True and args.detach is True and args.exec_args == ["true"]
    args = parse("run", "-db", "/bundle", "ID")
    assert args.detach is True and args.bundle == "/bundle"
    args = parse("run", "-db/bundle", "ID")
    assert args.detach is True and args.bundle == "/bundle"


@pytest.mark.parametrize("word,expected", [
    ("--detach=true", True), ("--detach=false", False), ("--detach=TRUE", True),
    ("--detach=1", True), ("--detach=0", False), ("--detach=t", True), ("--detach=f", False),
    ("-d=true", True), ("-d=false", False), ("-d", True),
])
def test_switch_with_explicit_value(word, expected):
    args = parse("run", word, "ID")
    assert args.detach is expected and args.container_id == "ID"


def test_explicit_false_overrides_an_earlier_switch():
    assert parse("delete", "-f", "--force=false", "ID").force is False


@pytest.mark.parametrize("word", ["--force=maybe", "--force=", "-f=2"])
def test_switch_with_a_bad_value_is_a_usage_error(capsys, word):
    status, out, err = run_main(capsys, "delete", word, "ID")
    assert status == 2 and out == ""
    assert err.startswith("pyoci delete: flag ") and "is a switch" in err


# --- positionals, flags after them, -- ------------------------------------------------------


def test_flags_after_positionals():
    args = parse("kill", "ID", "KILL", "--all")
    assert (args.container_id, args.signal, args.all) == ("ID", "KILL", True)
    args = parse("list", "--quiet", "--format", "json")
    assert args.quiet is True and args.format == "json"
    args = parse("delete", "ID", "-f")
    assert args.force is True and args.container_id == "ID"


def test_optional_positional_default():
    args = parse("kill", "ID")
    assert args.signal == "SIGTERM" and args.all is False
    assert parse("kill", "ID", "SIGKILL").signal == "SIGKILL"
    assert parse("validate").file is None
    assert parse("validate", "c.json").file == "c.json"


def test_double_dash_ends_the_flags():
    assert parse("delete", "--", "-odd").container_id == "-odd"
    args = parse("kill", "-a", "--", "ID", "-9")
    assert (args.all, args.container_id, args.signal) == (True, "ID", "-9")
    args = parse("delete", "-f", "--", "--force")
    assert args.force is True and args.container_id == "--force"


def test_single_dash_is_a_positional():
    assert parse("state", "-").container_id == "-"


def test_double_dash_then_too_many_words(capsys):
    status, out, err = run_main(capsys, "state", "--", "ID", "--all")
    assert status == 2 and out == ""
    assert err.splitlines()[0] == "pyoci state: unexpected argument: --all"


# --- exec's (and ps's) rest argument --------------------------------------------------------


def test_exec_rest_argument():
    args = parse("exec", "-t", "ID", "sh", "-c", "echo x")
    assert args.tty is True and args.container_id == "ID"
    assert args.exec_args == ["sh", "-c", "echo x"]


def test_exec_flags_after_the_id_belong_to_the_command():
    args = parse("exec", "ID", "--cwd", "/x", "ls", "-t", "--help")
    assert args.exec_args == ["--cwd", "/x", "ls", "-t", "--help"]
    assert args.cwd is None and args.tty is False


def test_exec_keeps_a_leading_double_dash_after_the_id():
    args = parse("exec", "ID", "--", "ls", "-la")
    assert args.container_id == "ID" and args.exec_args == ["--", "ls", "-la"]


def test_exec_double_dash_before_the_id():
    args = parse("exec", "-e", "A=1", "--", "ID", "ls")
    assert args.container_id == "ID" and args.exec_args == ["ls"] and args.env == ["A=1"]


def test_exec_without_a_command_parses_to_an_empty_list():
    args = parse("exec", "--process", "p.json", "ID")
    assert args.process == "p.json" and args.exec_args == []


def test_ps_rest_argument():
    args = parse("ps", "-f", "table", "ID", "-ef", "--forest")
    assert args.format == "table" and args.ps_args == ["-ef", "--forest"]


def test_exec_command_strips_the_leading_double_dash(capsys, tmp_path):
    # "exec ID --" leaves nothing once "--" is dropped: the handler refuses before loading
    # the container.  Without the strip it would look the container up and fail differently.
    status, out, err = run_main(capsys, "--root", str(tmp_path), "exec", "nosuch", "--")
    assert status == 1 and out == ""
    assert "exec needs a command" in err
    status, out, err = run_main(capsys, "--root", str(tmp_path), "exec", "nosuch", "--", "ls")
    assert status == 1 and "exec needs a command" not in err and "nosuch" in err


def test_rest_only_command_takes_help_first_and_everything_else(capsys, parser, tmp_path):
    status, out, err = run_main(capsys, "checkpoint", "--help")
    assert status == 0 and err == "" and out == parser.help(parser.commands["checkpoint"])
    args = parse("checkpoint", "--image-path", "/img", "ID", "--help")
    assert args.rest == ["--image-path", "/img", "ID", "--help"]
    # runc's checkpoint flags are not "unknown flags": the command itself says it is unsupported
    status, out, err = run_main(capsys, "--root", str(tmp_path), "checkpoint", "--image-path", "/img", "ID")
    assert status == 1 and out == "" and "not supported" in err


# --- value kinds ------------------------------------------------------------------------------


def test_int_kind():
    assert parse("create", "--preserve-fds", "2", "ID").preserve_fds == 2
    assert parse("exec", "--preserve-fds=3", "ID", "true").preserve_fds == 3
    assert isinstance(parse("create", "--preserve-fds", "2", "ID").preserve_fds, int)


def test_int_list_kind():
    args = parse("exec", "-g", "5", "-g", "6", "ID", "true")
    assert args.additional_gids == [5, 6]
    assert parse("exec", "-g5", "--additional-gids=7", "ID").additional_gids == [5, 7]
    assert parse("exec", "ID").additional_gids == []


def test_list_kind():
    args = parse("exec", "--env", "A=1", "-e", "B=2", "--cap", "CAP_X", "-c", "CAP_Y", "ID", "env")
    assert args.env == ["A=1", "B=2"] and args.cap == ["CAP_X", "CAP_Y"]


def test_list_defaults_are_not_shared_between_parses():
    first = cli.build_parser()
    args = first.parse(["exec", "-e", "A=1", "ID"])
    args.env.append("mutated")
    assert first.parse(["exec", "ID"]).env == []
    assert first.parse(["exec", "-e", "B=2", "ID"]).env == ["B=2"]


@pytest.mark.parametrize("argv,message", [
    (["create", "--preserve-fds", "two", "ID"], "pyoci create: flag --preserve-fds needs a whole number, not 'two'"),
    (["exec", "-g", "x", "ID"], "pyoci exec: flag -g needs a whole number, not 'x'"),
])
def test_int_errors(capsys, argv, message):
    status, out, err = run_main(capsys, *argv)
    assert status == 2 and out == ""
    assert err.splitlines()[0] == message


# --- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("argv,problem", [
    (["state", "--bogus", "ID"], "unknown flag --bogus"),
    (["state", "--bogus=1", "ID"], "unknown flag --bogus"),
    (["delete", "-fx", "ID"], "unknown flag -x (in -fx)"),
    (["delete", "-x", "ID"], "unknown flag -x"),
    (["state"], "missing ID"),
    (["kill", "--all"], "missing ID"),
    (["state", "a", "b"], "unexpected argument: b"),
    (["start", "a", "b", "c"], "unexpected arguments: b c"),
    (["create", "ID", "--bundle"], "flag --bundle needs a value"),
    (["create", "ID", "-b"], "flag -b needs a value"),
    (["list", "--format", "xml"], "flag --format: invalid choice 'xml' (choose from table, json)"),
    (["list", "-f=yaml"], "flag -f: invalid choice 'yaml' (choose from table, json)"),
    (["state", "--debug", "ID"], "unknown flag --debug"),  # global flags go before the command
])
def test_usage_errors(capsys, parser, argv, problem):
    status, out, err = run_main(capsys, *argv)
    assert status == 2
    assert out == ""
    command = argv[0]
    assert err.splitlines() == [f"pyoci {command}: {problem}", parser.usage(parser.commands[command])]


def test_usage_error_carries_the_command(parser):
    with pytest.raises(UsageError) as raised:
        parser.parse(["kill", "ID", "TERM", "extra"])
    assert raised.value.command is parser.commands["kill"]
    assert str(raised.value) == "unexpected argument: extra"


@pytest.mark.parametrize("argv,problem", [
    (["--log-format", "xml", "state", "ID"], "flag --log-format: invalid choice 'xml' (choose from text, json)"),
    (["--rootless", "maybe", "state", "ID"], "flag --rootless: invalid choice 'maybe' (choose from auto, true, false)"),
    (["--bogus", "state", "ID"], "unknown flag --bogus"),
    (["--root"], "flag --root needs a value"),
    (["frobnicate", "ID"], "unknown command 'frobnicate'"),
])
def test_global_usage_errors(capsys, parser, argv, problem):
    status, out, err = run_main(capsys, *argv)
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(f"pyoci: {problem}")
    assert lines[1:] == [parser.usage()]


def test_usage_lines(parser):
    assert parser.usage() == "usage: pyoci [global flags] COMMAND [flags] [ARGS...]"
    assert parser.usage(parser.commands["kill"]) == "usage: pyoci kill [flags] ID [SIGNAL]"
    assert parser.usage(parser.commands["exec"]) == "usage: pyoci exec [flags] ID [COMMAND...]"
    assert parser.usage(parser.commands["state"]) == "usage: pyoci state ID"
    assert parser.usage(parser.commands["validate"]) == "usage: pyoci validate [flags] [FILE]"


# --- help ---------------------------------------------------------------------------------------


def _flag_lines(text: str) -> list[str]:
    """The lines of a help text that start a flag's row (continuations are indented further)."""
    return [line for line in text.splitlines() if line.startswith("  -")]


@pytest.mark.parametrize("name", list(cli.COMMANDS))
@pytest.mark.parametrize("spelling", ["--help", "-h"])
def test_command_help_lists_every_flag(capsys, parser, name, spelling):
    command = parser.commands[name]
    status, out, err = run_main(capsys, name, spelling)
    assert status == 0 and err == ""
    assert out.splitlines()[0] == parser.usage(command)
    assert command.help.split()[0] in out
    visible = [f for f in command.flags if not f.hidden]
    rows = _flag_lines(out)
    assert len(rows) == len(visible), out
    for flag, row in zip(visible, rows):
        assert row.split()[:len(flag.label().split())] == flag.label().split(), (row, flag.names)
        for flag_name in flag.names:
            assert flag_name in row
    assert ("flags:" in out.splitlines()) == bool(visible)
    for positional in command.positionals:
        assert positional.label() in out


def test_command_help_shows_the_labels_and_kinds(capsys):
    status, out, _ = run_main(capsys, "exec", "--help")
    assert status == 0
    assert "  -e, --env K=V" in out
    assert "  -t, --tty " in out
    assert "  -g, --additional-gids GID" in out
    assert "(repeatable)" in out
    status, out, _ = run_main(capsys, "list", "-h")
    assert "(one of: table, json)" in out


def test_help_after_positionals_and_other_flags(capsys, parser):
    status, out, err = run_main(capsys, "kill", "ID", "KILL", "--help")
    assert status == 0 and err == ""
    assert out == parser.help(parser.commands["kill"])
    status, out, err = run_main(capsys, "--root", "/x", "delete", "-f", "-h")
    assert status == 0 and out == parser.help(parser.commands["delete"])


def test_help_wins_over_a_later_usage_error(capsys, parser):
    status, out, err = run_main(capsys, "state", "--help", "--bogus")
    assert status == 0 and err == "" and out.startswith("usage: pyoci state ID")


def test_help_raises_help_requested(parser):
    with pytest.raises(HelpRequested) as raised:
        parser.parse(["update", "--help"])
    assert raised.value.command is parser.commands["update"]
    with pytest.raises(HelpRequested) as raised:
        parser.parse(["--debug", "-h"])
    assert raised.value.command is None


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["--debug", "--help"]])
def test_program_help(capsys, parser, argv):
    status, out, err = run_main(capsys, *argv)
    assert status == 0 and err == ""
    assert out.splitlines()[0] == parser.usage()
    lines = out.splitlines()
    for name, (_, text) in cli.COMMANDS.items():
        assert any(line.split()[:1] == [name] for line in lines), name
    visible = [f for f in cli.GLOBAL_FLAGS if not f.hidden]
    rows = _flag_lines(out)
    assert len(rows) == len(visible)
    for flag in visible:
        assert any(flag.label() in row for row in rows), flag.names
    hidden = [f for f in cli.GLOBAL_FLAGS if f.hidden]
    assert [n for f in hidden for n in f.names] == ["--criu"]
    assert "--criu" not in out


def test_hidden_flag_is_still_accepted():
    assert parse("--criu", "/usr/sbin/criu", "state", "ID").criu == "/usr/sbin/criu"


def test_help_at_other_widths_still_lists_everything(capsys, monkeypatch):
    run_flags = [f for f in cli.build_parser().commands["run"].flags if not f.hidden]
    texts = {}
    for columns in ("40", "200"):
        monkeypatch.setenv("COLUMNS", columns)
        status, texts[columns], _ = run_main(capsys, "run", "--help")
        assert status == 0
        assert len(_flag_lines(texts[columns])) == len(run_flags)
        words = " ".join(texts[columns].split())
        for flag in run_flags:
            assert " ".join(flag.help.split()) in words
    assert len(texts["40"].splitlines()) > len(texts["200"].splitlines())  # wrapped
    assert max(len(line) for line in texts["200"].splitlines()) > 80  # not wrapped at 80


# --- version ------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--version"], ["-v"], ["--root", "X", "--version"],
                                  ["--debug", "-v"], ["--version=true"]])
def test_version(capsys, argv):
    status, out, err = run_main(capsys, *argv)
    assert status == 0 and err == ""
    assert out.splitlines() == [f"pyoci version {pyoci_nb.__version__}",
                                f"spec: {pyoci_nb.OCI_VERSION}",
                                f"python: {platform.python_version()}"]
    assert pyoci_nb.OCI_VERSION == "1.3.0"


def test_version_false_is_not_version(capsys, parser):
    status, out, err = run_main(capsys, "--version=false")
    assert status == 2 and out == "" and err == parser.help()


# --- global flags -----------------------------------------------------------------------------


def test_global_flags_before_the_command():
    args = parse("--root", "/r", "--log", "/l.json", "--log-format", "json", "--debug",
                 "--rootless", "true", "state", "ID")
    assert (args.root, args.log, args.log_format, args.debug) == ("/r", "/l.json", "json", True)
    assert args.rootless_mode == "true"
    assert not hasattr(args, "rootless")
    assert (args.command, args.container_id) == ("state", "ID")


def test_global_flags_with_equals():
    args = parse("--root=/r", "--log-format=json", "--rootless=false", "--systemd-cgroup", "list")
    assert (args.root, args.log_format, args.rootless_mode, args.systemd_cgroup) == ("/r", "json", "false", True)


def test_global_defaults():
    args = parse("state", "ID")
    assert args.root is None and args.log is None and args.log_format == "text"
    assert args.debug is False and args.systemd_cgroup is False and args.rootless_mode == "auto"
    assert args.version is False and args.criu is None


def test_global_and_command_flag_with_the_same_name():
    # spec --rootless is the command's switch; --rootless MODE before the command is global
    args = parse("--rootless", "false", "spec", "--rootless")
    assert args.rootless_mode == "false" and args.rootless is True


@pytest.mark.parametrize("argv", [[], ["--debug"], ["--root", "/x", "--log-format", "json"]])
def test_no_command_prints_help_on_stderr(capsys, parser, argv):
    status, out, err = run_main(capsys, *argv)
    assert status == 2 and out == ""
    assert err == parser.help()
    assert err.startswith(parser.usage() + "\n")


def test_no_command_parses_to_none():
    args = parse("--root", "/x")
    assert args.command is None and args.root == "/x"


# --- what the command line imports ---------------------------------------------------------------


def test_parsing_imports_no_heavy_standard_modules():
    code = (
        "import pyoci_nb.cli as cli\n"
        "parser = cli.build_parser()\n"
        "for argv in (['--root', '/r', '--log-format', 'json', 'state', 'ID'],\n"
        "             ['--root', '/r', 'delete', '-f', 'ID'], ['kill', '-a', 'ID', '9'],\n"
        "             ['exec', '-t', '-e', 'A=1', 'ID', 'sh', '-c', 'x'],\n"
        "             ['create', '--bundle=/b', '--pid-file', '/p', 'ID']):\n"
        "    parser.parse(argv)\n"
        "parser.usage(parser.commands['state'])\n"
    )
    assert modules_loaded_by(code, ("argparse", "re", "json", "enum", "gettext", "locale")) == []


def test_kill_with_a_signal_number_imports_no_enum():
    # containerd's shim runs `kill ID 15` / `kill --all ID 9` for every stop: numbers need no
    # signal module (it imports enum); names still work
    code = (
        "from pyoci_nb.runtime.container import parse_signal\n"
        "assert parse_signal('15') == 15 and parse_signal(9) == 9\n"
    )
    assert modules_loaded_by(code, ("signal", "enum")) == []
    from pyoci_nb.runtime.container import parse_signal

    assert parse_signal("KILL") == parse_signal("sigkill") == 9
