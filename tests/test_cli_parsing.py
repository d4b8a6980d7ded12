"""Property-based tests: no argument list or config file makes the CLI raise; it answers 0 or 2."""

import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.cli import main
from bench.core.errors import BenchError
from bench.grid.config import GridConfig, load_grid_toml

FLAGS = [
    "--method",
    "--scheme",
    "--seeds",
    "--seed",
    "--trunk",
    "--steps",
    "--batch-images",
    "--lr",
    "--dataset",
    "--headline-rule",
    "--cost-escape",
    "--good-share",
    "--threads",
    "--device",
    "--jobs",
    "--target-ci",
    "--target-diff-ci",
    "--against",
    "--target-metric",
    "--max-seeds",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "siamese",
            "classifier",
            "good-x5",
            "good-x",
            "uniform",
            "mlp",
            "cnn",
            "digits",
            "knn5",
            "0",
            "-1",
            "3",
            "1e-3",
            "nan",
            "inf",
            "",
            "cpu",
            "cuda",
            "good-x0.5",
        ]
    ),
    st.text(max_size=8),
    st.integers(-5, 5).map(str),
)
ARGS = st.lists(st.tuples(st.sampled_from(FLAGS), VALUES), max_size=6)


def _expect_clean_exit(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects a malformed flag value with exit 2
        code = exc.code
    err = capsys.readouterr().err
    assert code in (0, 2), (argv, err)
    assert "Traceback" not in err
    if code == 2 and err.startswith("error:"):
        assert len(err.strip().splitlines()) == 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=ARGS, all_=st.booleans())
def test_any_run_arguments_give_exit_0_or_a_clean_error(pairs, all_, capsys):
    argv = ["run", "--dry-run"] + (["--all"] if all_ else [])
    for flag, value in pairs:
        argv += [flag, value]
    _expect_clean_exit(argv, capsys)


TOML_VALUES = st.recursive(
    st.one_of(
        st.integers(-3, 700),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
        st.booleans(),
        st.sampled_from(["siamese", "uniform", "good-x5", "mlp", "x"]),
    ),
    lambda children: st.lists(children, max_size=3),
    max_leaves=5,
)
KEYS = st.sampled_from(
    [
        "dataset",
        "methods",
        "schemes",
        "seeds",
        "trunk",
        "headline_rule",
        "cost_escape",
        "cost_overkill",
        "good_share",
        "seed_target",
        "stepz",
    ]
)
BUDGET = st.dictionaries(
    st.sampled_from(["steps", "batch_images", "lr", "embedding_size", "eval_every", "x"]),
    TOML_VALUES,
    max_size=3,
)


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.dictionaries(KEYS, TOML_VALUES, max_size=5), budget=st.one_of(st.none(), BUDGET))
def test_any_config_file_gives_a_grid_or_a_bench_error(table, budget, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "grid.toml"
    text = "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())
    if budget is not None:
        text += "[budget]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in budget.items())
    path.write_text(text)
    tomllib.loads(text)  # the generator writes valid TOML; what it says may be nonsense
    try:
        GridConfig(**load_grid_toml(path))
    except BenchError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("text", ["methods = [\n", "[budget]\nsteps = 'many'\n", "seeds = 3\n"])
def test_broken_config_files_are_one_line_errors(text, tmp_path, capsys):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    assert main(["run", "--all", "--dry-run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
