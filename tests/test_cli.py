"""The command line refuses bad config with the key named, before binding anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mockllm", *args], capture_output=True, text=True, timeout=60)


def test_check_config_accepts_a_good_file_and_prints_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text("seed: 3\ntiming:\n  itl_ms: {dist: lognormal, median: 30, sigma: 0.4}\n")
    result = run("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert '"median": 30.0' in result.stdout and '"seed": 3' in result.stdout


def test_bad_config_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text("faults:\n  - fault: '429'\n    when: {probability: 2}\n")
    result = run("serve", "--port", "0", "--config", str(path))
    assert result.returncode == 2
    assert "faults[0].when.probability" in result.stderr


def test_bad_flag_value_and_bad_yaml(tmp_path: Path) -> None:
    result = run("serve", "--port", "0", "--tokens-per-chunk", "0")
    assert result.returncode == 2 and "timing.tokens_per_chunk" in result.stderr
    path = tmp_path / "broken.yaml"
    path.write_text("timing: [unclosed\n")
    result = run("check-config", str(path))
    assert result.returncode == 2 and "not valid YAML" in result.stderr
    result = run("check-config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "cannot read" in result.stderr
