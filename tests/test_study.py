"""The study command: the whole protocol in one directory, end to end; kill -9 in either stage
and ``--resume`` completing it with no trial or cell twice; bad flags; the stage clocks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers_processes import pool_workers

from bench.cli import main
from bench.cli.main import _parser
from bench.grid.store import read_records
from bench.study.state import StageClock, StudyState
from bench.tune.study import STUDY_FILE, open_storage, trial_counts

#: A small study: two methods, one scheme, 3 trials each, 2 start seeds and at most 3.
SMALL = ["--quick", "--method", "classifier", "--method", "siamese", "--scheme", "uniform"]
SMALL += ["--trials", "3", "--seeds", "2", "--max-seeds", "3"]


def study(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "study", *SMALL, *extra, "--out", str(out)]


def studies(out: Path) -> dict[str, optuna.Study]:
    storage = open_storage(out / "tune" / STUDY_FILE)
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage)
        for s in storage.get_all_studies()
    }


def finished_trials(out: Path) -> dict[tuple[str, int], float | None]:
    """(method, trial number) -> value of every finished trial."""
    found = studies(out).items()
    return {(m, t.number): t.value for m, one in found for t in one.get_trials() if t.state.is_finished()}


def state(out: Path) -> dict:
    return json.loads((out / "study.json").read_text())


def assert_complete(out: Path, trials: int = 3) -> None:
    """Every method has exactly ``trials`` counted trials, each number once; every final cell
    is recorded once; both stages are done and study.md links what they wrote."""
    found = studies(out)
    assert sorted(found) == ["classifier", "siamese"]
    for method, one in found.items():
        numbers = [t.number for t in one.get_trials()]
        assert len(numbers) == len(set(numbers))
        assert trial_counts(one)["counted"] == trials, method
        assert all(t.state.is_finished() for t in one.get_trials())
    records = read_records(out / "final")
    hashes = [r["hash"] for r in records]
    assert len(hashes) == len(set(hashes)) >= 4  # 2 methods x 2 start seeds at least, none twice
    assert all(r["status"] == "ok" and r["params_source"].startswith("tuned in ") for r in records)
    assert {s: state(out)["stages"][s][-1]["status"] for s in ("tune", "final")} == {
        "tune": "done",
        "final": "done",
    }
    text = (out / "study.md").read_text()
    assert "[tuning](tune/tuning.md)" in text and "[report](final/report.md)" in text
    assert (out / "tune" / "tuning.md").is_file() and (out / "final" / "report.md").is_file()


def wait_for(check, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the study did not get there in time")


def kill_9(proc: subprocess.Popen) -> None:
    workers = pool_workers(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # no orphaned workers


# ----------------------------------------------------------------- end to end


def test_a_quick_study_runs_end_to_end_into_one_directory(tmp_path, capsys):
    out = tmp_path / "study"
    done = subprocess.run(study(out, "--executor", "local"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_complete(out)
    text = (out / "study.md").read_text()
    assert (
        text.splitlines()[2]
        == "`python -m bench study " + " ".join(SMALL) + f" --executor local --out {out}`"
    )
    assert "| total | | | " in text and "## Seeds of the final runs" in text
    assert "| classifier | " in text.split("## Seeds of the final runs")[1]
    saved = state(out)
    assert saved["settings"]["trials"] == 3 and saved["settings"]["target_ci"] == 1.5
    assert all(saved["stages"][s][0]["wall_s"] > 0 for s in ("tune", "final"))

    # Done: a resume has nothing left to do and changes no result.
    records = (out / "final" / "results.jsonl").read_bytes()
    journal = (out / "tune" / STUDY_FILE).read_bytes()
    assert main(["study", "--resume", "--out", str(out)]) == 0
    assert "done already" in capsys.readouterr().out
    assert (out / "final" / "results.jsonl").read_bytes() == records
    assert (out / "tune" / STUDY_FILE).read_bytes() == journal
    assert len(state(out)["sessions"]) == 2 and len(state(out)["stages"]["final"]) == 1


# ----------------------------------------------------------------- kill -9 and resume


def test_kill_9_in_either_stage_then_resume_completes_with_no_trial_or_cell_twice(tmp_path):
    out = tmp_path / "study"
    journal, results = out / "tune" / STUDY_FILE, out / "final" / "results.jsonl"

    # 1. Killed while tuning, after one trial finished (a worker process runs the trials).
    proc = subprocess.Popen(
        study(out, "--executor", "process", "--jobs", "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for(lambda: journal.exists() and '"state":1' in journal.read_text(), proc)
    kill_9(proc)
    finished = finished_trials(out)
    assert finished and not results.exists()
    assert state(out)["stages"]["tune"][-1]["status"] == "running"  # what the killed process left

    # 2. Resumed (its own flags: --resume --out DIR), killed again in the final runs.
    resume = [sys.executable, "-m", "bench", "study", "--resume", "--out", str(out), "--executor", "local"]
    proc = subprocess.Popen(resume, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: results.exists() and results.read_text().count("\n") >= 1, proc)
    kill_9(proc)
    now = finished_trials(out)
    assert {k: now[k] for k in finished} == finished  # the trials finished before the first kill, untouched
    before = read_records(out / "final")
    tuned = journal.read_bytes()

    # 3. Resumed to the end: the tuning is not run again, the final runs skip recorded cells.
    assert main(["study", "--resume", "--out", str(out), "--executor", "local"]) == 0
    assert_complete(out)
    assert journal.read_bytes() == tuned
    assert read_records(out / "final")[: len(before)] == before
    stages = state(out)["stages"]
    assert [s["status"] for s in stages["tune"]] == ["killed", "done"]
    assert [s["status"] for s in stages["final"]] == ["killed", "done"]
    assert len(state(out)["sessions"]) == 3
    text = (out / "study.md").read_text()
    assert "| tune | " in text and "| 2 | [tuning](tune/tuning.md) |" in text


def test_sigterm_ends_a_study_with_130_and_a_study_md_that_says_where_it_stopped(tmp_path):
    out = tmp_path / "study"
    journal = out / "tune" / STUDY_FILE
    proc = subprocess.Popen(
        study(out, "--executor", "local"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: journal.exists() and journal.stat().st_size > 0, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert f"continue the study with: python -m bench study --resume --out {out}\n" in stdout
    assert state(out)["stages"]["tune"][-1]["status"] == "interrupted"
    assert (
        "| tune | " in (out / "study.md").read_text() and "| interrupted |" in (out / "study.md").read_text()
    )


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "1"], "at least 2 start seeds"),
        (["--target-ci", "-1"], "--target-ci must be 0"),
        (["--target-ci", "0", "--max-seeds", "5"], "--max-seeds only applies"),
        (["--method", "nope"], "unknown method"),
        (["--trials", "0"], "--trials must be at least 1"),
        (["--tune-scheme", "nope"], "scheme"),
        (["--resume"], "--resume needs --out"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2_before_any_work(flags, message, tmp_path, capsys):
    out = ["--out", str(tmp_path / "s")] if "--resume" not in flags else []
    assert main(["study", "--quick", *flags, *out]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s").exists()  # nothing created


def test_a_study_directory_is_refused_for_another_study_and_resumed_only_with_its_own_flags(tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    (out / "results.jsonl").write_text("")
    assert main(["study", "--quick", "--out", str(out)]) == 2  # not empty, and not a study
    assert main(["study", "--resume", "--out", str(tmp_path / "none")]) == 2  # nothing to resume
    assert not (tmp_path / "none").exists()
    begun = tmp_path / "begun"
    StudyState(begun, {"trials": 3, "quick": True, "method": ["classifier"]}).save()
    assert main(["study", "--quick", "--out", str(begun)]) == 2  # a study already, no --resume
    assert main(["study", "--resume", "--trials", "5", "--out", str(begun)]) == 2  # another budget
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4
    assert "not empty" in err[0] and "no study to resume" in err[1]
    assert "already holds a study" in err[2] and "started with --trials 3, not 5" in err[3]


def test_study_takes_every_grid_and_execution_flag_of_tune():
    def options(command: str) -> set[str]:
        sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
        return {s for a in sub._actions for s in a.option_strings}

    assert options("tune") <= options("study")
    assert {"--seeds", "--target-ci", "--max-seeds", "--target-metric", "--tune-scheme"} <= options("study")


# ----------------------------------------------------------------- the stage clocks


def test_a_stage_clock_keeps_its_wall_time_on_disk_while_it_runs_and_sums_over_sessions(tmp_path):
    saved = StudyState(tmp_path, {"trials": 1})
    saved.save()
    with StageClock(saved, "tune", every=0.02):
        deadline = time.monotonic() + 30
        while state(tmp_path)["stages"]["tune"][0]["wall_s"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert state(tmp_path)["stages"]["tune"][0]["status"] == "running"
    with pytest.raises(KeyboardInterrupt), StageClock(saved, "tune"):
        raise KeyboardInterrupt
    loaded = StudyState.load(tmp_path)
    assert [s["status"] for s in loaded.stages["tune"]] == ["done", "interrupted"]
    assert loaded.wall_s("tune") == pytest.approx(sum(s["wall_s"] for s in loaded.stages["tune"]))
    assert loaded.wall_s("tune") > 0 and loaded.status("final") == "not started"

    # A session a killed process left running is read back as killed.
    loaded.stages["final"] = [{"started_at": "2025-01-01T00:00:00+00:00", "wall_s": 5.0, "status": "running"}]
    loaded.save()  # as a kill -9 leaves it
    assert StudyState.load(tmp_path).status("final") == "killed"
    assert StudyState.load(tmp_path).wall_s("final") == 5.0
