"""What envkit build says when a build fails, read from BuildKit's plain progress log."""

from __future__ import annotations

from envkit import build


def test_a_base_image_that_cannot_be_pulled_is_named():
    # The end of a real failed build here (no registry), as BuildKit's plain progress prints it.
    log = [
        "#3 [internal] load metadata for docker.io/library/python:3.8-slim-bookworm",
        '#3 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/python/'
        'manifests/3.8-slim-bookworm": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53:'
        " no such host",
        "------",
    ]
    assert build.unpullable_base(log) == "docker.io/library/python:3.8-slim-bookworm"
    ok_metadata = ["#3 [internal] load metadata for docker.io/library/python:3.8", "#3 DONE 0.4s"]
    assert build.unpullable_base(ok_metadata + ["#7 ERROR: process did not complete"]) is None
