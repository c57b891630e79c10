"""The command-line tool as a user runs it: a real subprocess, tiny images."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stylecore", *args], capture_output=True, text=True, timeout=240, cwd=cwd
    )


def test_cli_writes_the_image_and_reports_losses(tmp_path, content_img, style_img):
    c, s, out = tmp_path / "c.png", tmp_path / "s.jpg", tmp_path / "out.png"
    content_img.save(c)
    style_img.save(s)
    proc = _run(
        str(c), str(s), "-o", str(out), "--size", "40", "--steps", "3", "--scales", "1", "--device", "cpu", "-q"
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (40, 30)
    assert "loss: total" in proc.stdout and "3 steps on cpu" in proc.stdout


def test_cli_bar_and_summary_end_where_a_run_converges(tmp_path, content_img, style_img):
    c, s, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.png"
    content_img.save(c)
    style_img.save(s)
    args = ["--size", "40", "--steps", "150", "--min-steps", "10", "--stop-tol", "0.02", "--scales", "1"]
    proc = _run(str(c), str(s), "-o", str(out), *args, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    summary = proc.stdout.split("converged at step ")[1]
    n = int(summary.split()[0])
    assert 10 <= n < 150 and summary.startswith(f"{n} of 150")
    bar = proc.stderr.replace("\r", "\n").strip().splitlines()[-1]  # tqdm's final state
    assert f"{n}/{n}" in bar and "100%" in bar


def test_cli_seed_preset_and_jpeg_output(tmp_path, content_img, style_img):
    c, s, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.jpg"
    content_img.save(c)
    style_img.save(s)
    proc = _run(str(c), str(s), "-o", str(out), "--preset", "seed", "--size", "32", "--steps", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    img = Image.open(out)
    assert (
        img.format == "JPEG" and min(img.size) == 32
    )  # the seed preset sizes the short side (torchvision Resize(int))


def test_cli_refuses_bad_input_with_a_clear_message(tmp_path, style_img):
    bad, s = tmp_path / "notes.txt", tmp_path / "s.png"
    bad.write_text("this is not a picture")
    style_img.save(s)
    proc = _run(str(bad), str(s), "-o", str(tmp_path / "o.png"), "--steps", "1", "-q")
    assert proc.returncode == 2
    assert "isn't an image" in proc.stderr or "not an image" in proc.stderr.lower()
    proc = _run(str(s), str(s), "-o", str(tmp_path / "o.png"), "--steps", "0")
    assert proc.returncode == 2 and "steps must be" in proc.stderr
