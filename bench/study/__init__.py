"""The study: the whole protocol in one directory, tuning then final runs then the report
(``python -m bench study``). ``state`` keeps what the study is and how long each stage took
(``DIR/study.json``); ``summary`` writes ``DIR/study.md`` from it and the stages' outputs."""

from bench.study.state import FINAL_DIR, STAGES, STATE_FILE, SUMMARY_FILE, TUNE_DIR, StageClock, StudyState

__all__ = ["FINAL_DIR", "STAGES", "STATE_FILE", "SUMMARY_FILE", "TUNE_DIR", "StageClock", "StudyState"]
