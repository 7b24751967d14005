"""`pyoci update` flag parsing (runc's units), `events --interval` durations, merging."""

from __future__ import annotations

import pytest

from pyoci_nb.cli import build_parser
from pyoci_nb.errors import ConfigError, UnsupportedError
from pyoci_nb.runtime.cgroups.commands import (merge_resources, parse_duration, parse_size,
                                               resources_from_flags)


def test_sizes_like_runc():
    assert parse_size("64m", "--memory") == 64 << 20
    assert parse_size("1G", "--memory") == 1 << 30
    assert parse_size("512kb", "--memory") == 512 << 10
    assert parse_size("1048576", "--memory") == 1 << 20
    assert parse_size("1.5g", "--memory") == 3 << 29
    assert parse_size("-1", "--memory-swap", allow_unlimited=True) == -1
    with pytest.raises(ConfigError) as info:
        parse_size("lots", "--memory")
    assert info.value.where == "--memory"


def test_durations_like_go():
    assert parse_duration("5s") == 5
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1m30s") == 90
    for bad in ("5", "soon", "0s", "5sx"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_flags_build_a_resources_fragment():
    args = build_parser().parse(["update", "--memory", "64m", "--memory-swap", "-1",
                                      "--cpu-quota", "20000", "--cpu-period", "100000",
                                      "--cpu-share", "512", "--cpuset-cpus", "0", "--pids-limit", "10",
                                      "--blkio-weight", "300", "id"])
    assert resources_from_flags(args) == {
        "memory": {"limit": 64 << 20, "swap": -1},
        "cpu": {"quota": 20000, "period": 100000, "shares": 512, "cpus": "0"},
        "pids": {"limit": 10}, "blockIO": {"weight": 300}}
    assert resources_from_flags(build_parser().parse(["update", "id"])) == {}
    with pytest.raises(ConfigError) as info:
        resources_from_flags(build_parser().parse(["update", "--pids-limit", "x", "id"]))
    assert info.value.where == "--pids-limit"
    with pytest.raises(ConfigError):
        resources_from_flags(build_parser().parse(["update", "--blkio-weight", "5", "id"]))
    with pytest.raises(UnsupportedError):
        resources_from_flags(build_parser().parse(["update", "--l3-cache-schema", "L3:0=f", "id"]))


def test_merge_changes_only_what_was_given():
    base = {"memory": {"limit": 1, "swap": 2}, "devices": [{"allow": False}], "pids": {"limit": 5}}
    merged = merge_resources(base, {"memory": {"limit": 3}, "cpu": {"shares": 2}})
    assert merged == {"memory": {"limit": 3, "swap": 2}, "devices": [{"allow": False}],
                      "pids": {"limit": 5}, "cpu": {"shares": 2}}
    assert base["memory"]["limit"] == 1
