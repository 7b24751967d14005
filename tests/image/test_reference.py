"""References parsed as docker parses them (distribution/reference's normalisation)."""

import pytest

from pyoci_nb.image import ImageError, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    ("alpine", "docker.io", "library/alpine", "latest", None),
    ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
    ("library/alpine:3.20", "docker.io", "library/alpine", "3.20", None),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
    ("index.docker.io/team/tool:v1", "docker.io", "team/tool", "v1", None),
    ("team/tool", "docker.io", "team/tool", "latest", None),
    ("localhost/tool", "localhost", "tool", "latest", None),
    ("127.0.0.1:5000/demo/bb:v1", "127.0.0.1:5000", "demo/bb", "v1", None),
    ("registry.example.org/a/b/c", "registry.example.org", "a/b/c", "latest", None),
    (f"repo@{DIGEST}", "docker.io", "library/repo", None, DIGEST),
    (f"host:5000/repo:tag@{DIGEST}", "host:5000", "repo", "tag", DIGEST),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None),
])
def test_references_are_normalised_as_docker_does(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


def test_docker_hub_api_host_and_loopback():
    assert parse_reference("alpine").api_host == "registry-1.docker.io"
    assert parse_reference("127.0.0.1:5000/x").is_loopback()
    assert parse_reference("localhost:5000/x").is_loopback()
    assert parse_reference("[::1]:5000/x").is_loopback()
    assert not parse_reference("registry.example.org/x").is_loopback()
    assert not parse_reference("10.0.0.1:5000/x").is_loopback()


@pytest.mark.parametrize("text, part", [
    ("Alpine", "invalid repository name 'library/Alpine'"),
    ("alpine:", "invalid tag ''"),
    ("alpine:.bad", "invalid tag '.bad'"),
    ("alpine@sha256:abc", "invalid digest 'sha256:abc'"),
    ("a//b", "invalid repository name"),
    ("", "invalid image reference"),
    (" alpine", "invalid image reference"),
    ("bad_host:x:5000/repo", "invalid"),
])
def test_bad_references_name_the_part_and_the_rule(text, part):
    with pytest.raises(ImageError) as info:
        parse_reference(text)
    assert part in str(info.value) and info.value.where == "reference" and info.value.why
