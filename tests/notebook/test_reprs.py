"""HTML and text reprs (pyoci_nb.notebook.reprs): well-formed, escaped, complete, stable.

The objects are real: the runtime-spec's own full example config, runc's features output, a
validation report of a broken config, a real diff, a real program's result and namespaces of
a real process made with unshare(1).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pyoci_nb.notebook import reprs, svg
from pyoci_nb.notebook.reprs import html_repr, text_repr
from pyoci_nb.runtime.container import Container as RuntimeContainer
from pyoci_nb.spec import Features, State, ValidationReport, default_spec, load_spec, validate_config
from pyoci_nb.spec.capabilities import ALL_CAPABILITIES

SCRIPT = "<script>alert('x')</script>"
VOID = {"br", "hr", "img", "input", "meta", "link", "wbr", "col", "area", "base", "source", "track", "embed"}
SVG_LEAVES = {"rect", "line", "polygon", "circle", "path"}


# ----------------------------------------------------------------------------- helpers
class StrictParser(HTMLParser):
    """Collects tags and fails on unbalanced or misnested ones."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "style":
            self._in_style = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        if not self._in_style:
            self.text.append(data)


def parse(markup: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(markup)
    parser.close()
    assert not parser.errors, parser.errors[:5]
    assert not parser.stack, f"unclosed tags: {parser.stack}"
    return parser


def visible_text(markup: str) -> str:
    return " ".join(parse(markup).text)


def all_keys(value, out=None) -> set[str]:
    """Every object key of a JSON document, recursively."""
    out = set() if out is None else out
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(key)
            all_keys(item, out)
    elif isinstance(value, list):
        for item in value:
            all_keys(item, out)
    return out


def descriptions_of(model) -> set[str]:
    """The descriptions of every field that is set, in a model and its nested models."""
    found = set()
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if value is None:
            continue
        if info.description:
            found.add(info.description)
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        for item in items:
            if hasattr(type(item), "model_fields"):
                found |= descriptions_of(item)
    return found


@pytest.fixture(scope="module")
def example_spec(runtime_spec_dir):
    """The runtime-spec's full example: every part of config.json is set."""
    return load_spec(runtime_spec_dir / "test/config/good/spec-example.json")


@pytest.fixture(scope="module")
def runc_features(runtime_spec_dir):
    return Features.model_validate(json.loads((runtime_spec_dir / "runc-features.json").read_text()))


@pytest.fixture(scope="module")
def broken_report():
    config = default_spec().to_dict()
    config["process"]["cwd"] = "relative/dir"
    config["process"]["capabilities"]["bounding"].append("CAP_NOT_A_THING")
    config["mounts"][0]["destination"] = "proc"
    report = ValidationReport(validate_config(config), source="config.json")
    assert len(report.problems) >= 3
    return report


@pytest.fixture(scope="module")
def program_result():
    return subprocess.run(["sh", "-c", "echo out-line; echo err-line >&2; exit 3"], capture_output=True, text=True)


def state(status="running", pid=4242):
    return State.model_validate({"ociVersion": "1.3.0", "id": "web-1", "status": status,
                                 "pid": pid, "bundle": "/srv/bundles/web",
                                 "annotations": {"org.example.team": "infra"}})


def every_object(example_spec, runc_features, broken_report, program_result):
    spec = example_spec
    return {
        "Spec": spec, "Process": spec.process, "User": spec.process.user,
        "Capabilities": spec.process.capabilities, "Rlimit": spec.process.rlimits[0],
        "Root": spec.root, "Mount": spec.mounts[1], "Hooks": spec.hooks, "Linux": spec.linux,
        "Namespace": spec.linux.namespaces[0], "IDMapping": spec.linux.uid_mappings[0],
        "Device": spec.linux.devices[0], "Resources": spec.linux.resources, "Seccomp": spec.linux.seccomp,
        "State": state(), "Features": runc_features, "ValidationReport": broken_report,
        "Problem": broken_report.problems[0], "SpecDiff": spec.diff(), "empty SpecDiff": default_spec().diff(),
        "run result": program_result,
    }


@pytest.fixture(scope="module")
def objects(example_spec, runc_features, broken_report, program_result):
    return every_object(example_spec, runc_features, broken_report, program_result)


# ----------------------------------------------------------------------------- every object
def test_every_object_has_wellformed_deterministic_html_and_bounded_text(objects):
    for name, obj in objects.items():
        markup = html_repr(obj)
        assert markup.startswith('<div class="pyoci-repr"><style>'), name
        assert "repr of" not in markup and "failed" not in visible_text(markup).lower(), (name, markup[-400:])
        parse(markup)
        assert html_repr(obj) == markup, f"{name}: HTML differs between two renderings"
        assert " id=" not in markup and "0x7f" not in markup, name
        text = text_repr(obj)
        assert text and text == text_repr(obj), name
        assert len(text.splitlines()) <= reprs.MAX_TEXT_LINES, name
        assert not re.search(r"0x[0-9a-f]{8,}", text), f"{name}: an address in the text repr"
        assert "repr failed" not in text, (name, text)


def test_the_classes_delegate_to_reprs(example_spec, broken_report):
    from IPython.lib.pretty import pretty

    for obj in (example_spec, example_spec.process, state(), broken_report, example_spec.diff()):
        assert obj._repr_html_() == html_repr(obj)
        assert pretty(obj) == text_repr(obj)


def test_equal_objects_render_to_the_same_bytes(example_spec):
    again = load_spec(example_spec.to_dict())
    assert again is not example_spec
    assert html_repr(again) == html_repr(example_spec)
    assert text_repr(again) == text_repr(example_spec)
    assert html_repr(again.diff()) == html_repr(example_spec.diff())


def test_spec_html_shows_every_field_with_its_description_on_hover(example_spec):
    markup = html_repr(example_spec)
    text = visible_text(markup)
    titles = {attrs.get("title") for _, attrs in parse(markup).tags if attrs.get("title")}
    for key in all_keys(example_spec.to_dict()):
        assert key in text or f'"{key}"' in text, f"field {key!r} not shown"
    # each field's spec description is the hover text of its name
    missing = {d for d in descriptions_of(example_spec) if d not in titles}
    assert not missing, sorted(missing)[:5]


def test_plain_words_explanations_are_shown(example_spec):
    text = visible_text(html_repr(example_spec))
    for words in ("every capability the process and its children may ever hold",
                  "those checked now", "those it may make effective", "kept across exec",
                  "no setuid gain", "hidden from the container", "read-only inside the container"):
        assert words in text, words


def test_values_are_escaped_everywhere():
    config = default_spec().to_dict()
    config["hostname"] = SCRIPT
    config["process"]["args"] = ["sh", "-c", f"echo {SCRIPT}"]
    config["process"]["env"].append(f"EVIL={SCRIPT}")
    config["annotations"] = {f"org.example/{SCRIPT}": SCRIPT}
    config["mounts"].append({"destination": f"/mnt/{SCRIPT}", "type": "tmpfs", "source": SCRIPT,
                             "options": [f"mode={SCRIPT}"]})
    config["linux"]["namespaces"].append({"type": "user", "path": f"/proc/1/ns/{SCRIPT}"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config[f"x-unknown-{SCRIPT}"] = {SCRIPT: [SCRIPT]}
    spec = load_spec(config)
    for obj in (spec, spec.diff(), spec.process, spec.mounts[-1]):
        markup = html_repr(obj)
        parse(markup)
        assert "<script" not in markup.lower(), type(obj).__name__
        assert "&lt;script&gt;" in markup, type(obj).__name__
        assert SCRIPT in visible_text(markup)  # shown, as text
        assert SCRIPT in text_repr(obj) or "script" in text_repr(obj)


def test_long_lists_are_truncated_with_counts():
    config = default_spec().to_dict()
    config["process"]["env"] = [f"VAR_{i}=value-{i}" for i in range(1000)]
    config["linux"]["maskedPaths"] = [f"/masked/{i}" for i in range(700)]
    config["mounts"] = [{"destination": f"/m/{i}", "type": "tmpfs", "source": "tmpfs"} for i in range(300)]
    spec = load_spec(config)
    markup = html_repr(spec)
    text = visible_text(markup)
    assert f"{1000 - reprs.MAX_ITEMS} more (1000 in all)" in text
    assert f"{1000 - reprs.MAX_RENDERED_ITEMS} more not shown" in text
    assert f"{300 - reprs.MAX_ITEMS} more (300 in all)" in text
    assert "VAR_999" not in markup and "/masked/699" not in markup
    assert len(markup) < 400_000
    text = text_repr(spec)
    assert len(text.splitlines()) <= reprs.MAX_TEXT_LINES
    assert ", ... 990 more]" in text and "/masked/699" not in text
    assert f"... {300 - 2 * reprs.MAX_ITEMS} more (300 in all)" in text


def test_text_repr_is_cut_at_max_lines():
    config = default_spec().to_dict()
    config["annotations"] = {f"org.example.k{i}": "v" for i in range(10)}
    config["linux"]["sysctl"] = {f"net.ipv4.conf.eth{i}.forwarding": "1" for i in range(10)}
    config["hooks"] = {"poststop": [{"path": f"/bin/hook{i}"} for i in range(50)]}
    config["mounts"] += [{"destination": f"/m/{i}", "type": "tmpfs", "source": "tmpfs"} for i in range(15)]
    config["linux"]["devices"] = [{"type": "c", "path": f"/dev/d{i}", "major": 1, "minor": i} for i in range(50)]
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    config["linux"]["namespaces"].append({"type": "user"})
    config["process"]["rlimits"] = [{"type": t, "soft": 1, "hard": 1} for t in
                                    ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE",
                                     "RLIMIT_RSS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS")]
    lines = text_repr(load_spec(config)).splitlines()
    assert len(lines) == reprs.MAX_TEXT_LINES
    assert re.fullmatch(r"\.\.\. \(\d+ more lines\)", lines[-1])


def test_long_strings_are_cut_with_a_count():
    spec = default_spec()
    spec.hostname = "h" * 5000
    markup = html_repr(spec)
    assert "h" * 5000 not in markup and "(5000 chars)" in markup
    assert "(5000 chars)" in text_repr(spec)


# ----------------------------------------------------------------------------- pictures
def test_capability_grid_marks_exactly_the_sets_each_capability_is_in(example_spec):
    caps = example_spec.process.capabilities
    parser = parse(html_repr(caps))
    table = html_repr(caps).split('<table class="pyoci-tbl pyoci-capgrid">', 1)[1].split("</table>", 1)[0]
    sets = ["bounding", "effective", "inheritable", "permitted", "ambient"]
    rows = re.findall(r'<tr><th class="pyoci-capname"[^>]*>([A-Z_]+)</th>(.*?)</tr>', table)
    assert {name for name, _ in rows} == set(caps.bounding) | set(caps.effective) | set(caps.inheritable) \
        | set(caps.permitted) | set(caps.ambient)
    for name, cells in rows:
        marks = re.findall(r'class="pyoci-cap-(on|off)"', cells)
        expected = ["on" if name in (getattr(caps, s) or []) else "off" for s in sets]
        assert marks == expected, name
    unset = len(ALL_CAPABILITIES) - len(rows)
    assert f"{unset} of the kernel's {len(ALL_CAPABILITIES)} capabilities are in no set" in " ".join(parser.text)


def test_mounts_table_has_one_row_per_mount(example_spec):
    markup = html_repr(example_spec)
    mounts_section = markup.split(">mounts</span>", 1)[1].split("</details>", 1)[0]
    rows = re.findall(r"<tr><td><code class=\"pyoci-v\">([^<]+)</code>", mounts_section)
    assert rows == [m.destination for m in example_spec.mounts]
    assert "<th" in mounts_section and ">destination<" in mounts_section and ">options<" in mounts_section


@pytest.mark.parametrize("status", ["creating", "created", "running", "stopped"])
def test_lifecycle_picture_lights_the_current_status(status):
    markup = html_repr(state(status))
    lit = re.findall(r'<rect [^>]*class="pyoci-svg-lit"[^>]*/><text [^>]*>([a-z]+)</text>', markup)
    assert lit == [status]
    for other in set(svg.LIFECYCLE_STATES) - {status}:
        assert f">{other}</text>" in markup


def test_lifecycle_picture_of_an_unknown_status_lights_nothing_and_says_so():
    picture = svg.lifecycle_svg("exploded")
    assert "pyoci-svg-lit" not in picture
    assert "status exploded is not one of the spec" in picture


def test_namespaces_picture_of_a_config(example_spec):
    rows = reprs.config_namespace_rows(example_spec.linux.namespaces)
    relations = {ns_type: relation for ns_type, _, _, relation in rows}
    listed = {ns.type for ns in example_spec.linux.namespaces}
    for ns_type in reprs.NAMESPACE_FILES:
        assert relations[ns_type] == ("new" if ns_type in listed else "shared")
    joined = load_spec(dict(default_spec().to_dict(), linux={"namespaces": [
        {"type": "uts"}, {"type": "network", "path": "/var/run/netns/blue"}]}))
    markup = html_repr(joined)
    assert "joins /var/run/netns/blue" in markup
    assert ">shared</text>" in markup


@pytest.mark.root
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_namespace_rows_read_inode_numbers_of_a_real_process():
    """A process in new uts and ipc namespaces (unshare(1)): those two differ from ours, with the
    inode numbers the kernel shows in /proc/<pid>/ns; the others are shared."""
    child = subprocess.Popen(["unshare", "--uts", "--ipc", "sleep", "60"])
    try:
        for _ in range(100):  # wait for the exec of sleep (after unshare)
            if Path(f"/proc/{child.pid}/comm").read_text().strip() == "sleep":
                break
            subprocess.run(["sleep", "0.02"])
        rows = {r[0]: r for r in reprs.namespace_rows_for_pid(child.pid)}
        for ns_type, name in (("uts", "uts"), ("ipc", "ipc")):
            inode = re.search(r"\[(\d+)\]", os.readlink(f"/proc/{child.pid}/ns/{name}")).group(1)
            assert rows[ns_type][3] == "new"
            assert rows[ns_type][2] == f"inode {inode}"
            mine = re.search(r"\[(\d+)\]", os.readlink(f"/proc/self/ns/{name}")).group(1)
            assert rows[ns_type][1] == f"inode {mine}" and mine != inode
        for ns_type in ("pid", "network", "mount", "user"):
            assert rows[ns_type][3] == "shared"
        picture = svg.namespaces_svg(list(rows.values()), container_label=f"container (pid {child.pid})")
        parse(picture)
        assert f"inode {re.search(r'[0-9]+', os.readlink(f'/proc/{child.pid}/ns/uts')).group(0)}" in picture
    finally:
        child.kill()
        child.wait()


# ----------------------------------------------------------------------------- diff
def test_diff_html_and_terminal_text():
    spec = default_spec()
    spec.hostname = "box"
    spec.process.args = ["sh", "-c", "echo hi"]
    spec.linux.masked_paths = spec.linux.masked_paths[1:]
    diff = spec.diff()
    markup = html_repr(diff)
    parse(markup)
    assert markup.count('class="pyoci-diff-change"') == 1
    assert markup.count('class="pyoci-diff-add"') == 2
    assert markup.count('class="pyoci-diff-remove"') == 1
    text = text_repr(diff)
    assert text.splitlines()[:3] == ["SpecDiff: 1 changed, 2 added, 1 removed", "--- before", "+++ after"]
    assert '- hostname: "runc"' in text and '+ hostname: "box"' in text
    assert '+ process.args[1]: "-c"' in text
    assert '- linux.maskedPaths[0]: "/proc/acpi"' in text
    assert "\x1b" not in text  # plain text: reads in any terminal and in logs
    assert text_repr(default_spec().diff()) == "SpecDiff: no differences (before -> after)"
    assert "no differences" in visible_text(html_repr(default_spec().diff()))


# ----------------------------------------------------------------------------- reports, results
def test_validation_report_lists_every_problem(broken_report):
    markup = html_repr(broken_report)
    text = visible_text(markup)
    assert f"{len(broken_report.problems)} problems" in text
    for problem in broken_report.problems:
        assert problem.path in text
    assert "process.cwd" in text_repr(broken_report)
    valid = ValidationReport([], source="config.json")
    assert "valid" in visible_text(html_repr(valid))
    assert text_repr(valid) == "ValidationReport: config.json: valid"


def test_run_result_shows_exit_status_and_output(program_result):
    markup = html_repr(program_result)
    text = visible_text(markup)
    assert "exit 3" in text and "out-line" in text and "err-line" in text
    assert "sh -c 'echo out-line; echo err-line >&2; exit 3'" in text
    assert text_repr(program_result).splitlines()[0].startswith("CompletedProcess: exit 3, args sh -c")
    killed = subprocess.run(["sh", "-c", "kill -KILL $$"], capture_output=True)
    assert "signal 9" in visible_text(html_repr(killed))
    many = subprocess.run([sys.executable, "-c", "print('\\n'.join(map(str, range(5000))))"], capture_output=True)
    assert f"{5000 - reprs.MAX_OUTPUT_LINES} more lines (5000 in all)" in visible_text(html_repr(many))


# ----------------------------------------------------------------------------- never raises
class Exploding:
    def __repr__(self):
        raise RuntimeError("boom <b>bold</b>")


class Container(RuntimeContainer):  # the runtime's Container, whose state() can fail
    def __init__(self):
        self.id = "gone<1>"

    def state(self):
        raise FileNotFoundError("no state.json for <gone>")


class LookAlike:  # named like a family's class but none of them: the generic repr, not theirs
    id = "x"

    def state(self):
        raise AssertionError("a container repr was used for a look-alike")


LookAlike.__name__ = LookAlike.__qualname__ = "Container"


def test_a_repr_never_raises_and_says_why_it_failed():
    markup = html_repr(Exploding())
    parse(markup)
    assert "repr of Exploding failed: RuntimeError: boom &lt;b&gt;bold&lt;/b&gt;" in markup
    assert text_repr(Exploding()) == "<Exploding: repr failed: RuntimeError: boom <b>bold</b>>"
    markup = html_repr(Container())
    parse(markup)
    assert "state unavailable: FileNotFoundError: no state.json for &lt;gone&gt;" in markup
    assert "state unavailable" in text_repr(Container())


def test_renderers_are_chosen_by_class_not_by_class_name():
    markup = html_repr(LookAlike())
    text = visible_text(markup)
    assert "state unavailable" not in text and "failed" not in text
    assert text_repr(LookAlike()).startswith("<")  # its plain repr()


def test_reprs_of_runtime_objects_do_not_import_pydantic():
    code = ("import sys, subprocess\n"
            "from pyoci_nb.notebook.reprs import html_repr, text_repr\n"
            "r = subprocess.run(['true'], capture_output=True)\n"
            "html_repr(r); text_repr(r)\n"
            "bad = [m for m in sys.modules if m.startswith(('pydantic', 'ipywidgets', 'pyoci_nb.spec.models'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_probe_result_lists_checks_with_why_and_fix():
    from pyoci_nb.notebook.probe import ProbeCheck, ProbeResult

    result = ProbeResult([ProbeCheck("mount namespace + tmpfs", True, "ok <tmpfs>"),
                          ProbeCheck("pivot_root", False, "pivot_root", why="EINVAL <rootfs>", fix="use --no-pivot")],
                         {"mode": "root"})
    markup = html_repr(result)
    parse(markup)
    text = visible_text(markup)
    assert result.summary() in text and "EINVAL <rootfs>" in text and "use --no-pivot" in text
    assert "&lt;rootfs&gt;" in markup and "<rootfs>" not in markup
    lines = text_repr(result).splitlines()
    assert lines[0] == f"ProbeResult: {result.summary()}"
    assert "      why: EINVAL <rootfs>" in lines and "      fix: use --no-pivot" in lines
    assert result._repr_html_() == markup


# ----------------------------------------------------------------------------- bundle, container, run
def test_bundle_repr_shows_rootfs_config_and_validation(busybox_bundle):
    from pyoci_nb.bundle import Bundle

    bundle = Bundle(busybox_bundle)
    markup = html_repr(bundle)
    parse(markup)
    text = visible_text(markup)
    assert str(busybox_bundle) in text and "config valid" in text.replace("  ", " ")
    for name in ("bin/", "etc/", "proc/"):
        assert name in text
    assert ">Spec</span>" in markup and "RLIMIT_NOFILE" in text
    lines = text_repr(bundle).splitlines()
    assert lines[0] == f"Bundle: {busybox_bundle}" and "  ValidationReport: config.json: valid" in lines
    config = json.loads((busybox_bundle / "config.json").read_text())
    config["process"]["cwd"] = "not/absolute"
    (busybox_bundle / "config.json").write_text(json.dumps(config))
    broken = Bundle(busybox_bundle)
    text = visible_text(html_repr(broken))
    assert "1 problem" in text and "process.cwd" in text and "config.json unreadable" in text
    assert "process.cwd" in text_repr(broken)


@pytest.mark.root
def test_container_repr_lights_its_status_and_reads_its_namespaces(busybox_bundle, state_root, container_id):
    from pyoci_nb.runtime.container import Container

    container = Container.create(str(busybox_bundle), id=container_id, root=str(state_root))
    markup = html_repr(container)
    parse(markup)
    pid = container.state()["pid"]
    assert re.findall(r'class="pyoci-svg-lit"[^>]*/><text [^>]*>([a-z]+)<', markup) == ["created"]
    for name in ("pid", "net", "mnt", "ipc", "uts"):  # the default config's namespaces: new ones
        inode = re.search(r"\[(\d+)\]", os.readlink(f"/proc/{pid}/ns/{name}")).group(1)
        assert f">inode {inode}</text>" in markup
    user_inode = re.search(r"\[(\d+)\]", os.readlink("/proc/self/ns/user")).group(1)
    assert f">shared  inode {user_inode}</text>" in markup  # no user namespace: the host's
    assert text_repr(container).splitlines()[0] == f"Container {container_id}: created, pid {pid}"
    assert container._repr_html_() == markup
    container.delete(force=True)
    assert "state unavailable" in html_repr(container)


@pytest.mark.root
def test_run_result_repr_of_a_real_container(busybox_bundle, state_root, container_id):
    from pyoci_nb.runtime.container import run

    result = run(str(busybox_bundle), ["sh", "-c", "echo from-inside; echo oops >&2; exit 3"],
                 id=container_id, root=str(state_root), capture_output=True)
    text = visible_text(html_repr(result))
    assert "exit 3" in text and "from-inside" in text and "oops" in text and container_id in text
    assert text_repr(result).splitlines()[0].startswith(f"{type(result).__name__}: exit 3, args sh -c")
    assert result._repr_html_() == html_repr(result)
