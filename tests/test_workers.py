"""A sweep beyond one process: blocks, ``--workers``, ``--shard``, ``scratch-rnn merge``, ``--report-json`` and
``--junit-xml`` (scratch_rnn.testing.workers and .reports). Example counts are tiny; each worker pool imports
TensorFlow once per process, which is most of these tests' time."""

import functools
import hashlib
import json
import pickle
import xml.etree.ElementTree as ET

import pytest

from scratch_rnn.cli import main, unit_arguments
from scratch_rnn.testing import reports, workers
from scratch_rnn.testing.check import Failure, Report
from scratch_rnn.testing.verify import block_seed, verify

SWEEP = ["verify", "--layer", "SimpleRNN", "--dtype", "float32", "--examples", "6", "--block-size", "2", "--seed", "11"]

#: Candidates, written to a module of the test's own directory (spawned workers import it by name).
MUTANT = """
from scratch_rnn.testing.runners import engine_candidate

_engine = engine_candidate("SimpleRNN")


def port(config, weights, x, mask=None, initial_state=None):  # the engine, every output 0.1% too large
    out = _engine(config, weights, x, mask, initial_state)
    return [o * 1.001 for o in out] if isinstance(out, (list, tuple)) else out * 1.001
"""
CRASH = """
import os

from scratch_rnn.testing.runners import engine_candidate

_engine = engine_candidate("SimpleRNN")


def port(config, weights, x, mask=None, initial_state=None):  # right in float32; kills its process in float64
    if x.dtype == "float64":
        os._exit(3)
    return _engine(config, weights, x, mask, initial_state)
"""
HANG = """
import re

from scratch_rnn.testing.runners import engine_candidate

_engine = engine_candidate("SimpleRNN")


def port(config, weights, x, mask=None, initial_state=None):  # right in float32; freezes its process in float64
    if x.dtype == "float64":
        re.match(r"(a|aa)+$", "a" * 80 + "b")  # backtracking inside re's C code holds the GIL
    return _engine(config, weights, x, mask, initial_state)
"""


def fingerprint(case) -> str:
    return hashlib.sha256(pickle.dumps(case)).hexdigest()


def cases_of(seed: int, block: int, examples: int = 3) -> list[str]:
    """The fingerprints of the cases a block of a SimpleRNN float32 sweep checks, in order."""
    seen = []
    verify(
        layer="SimpleRNN",
        max_examples=examples,
        seed=seed,
        dtype="float32",
        block=block,
        on_example=lambda r: seen.append(fingerprint(r.case)),
    )
    return seen


@pytest.fixture
def module(tmp_path, monkeypatch):
    """``module(source) -> "name:port"``: a candidate module in the test's directory (the current one), named
    for the test so that no other test's module of that name is found in ``sys.modules``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = "port_" + hashlib.sha256(f"{tmp_path}{source}".encode()).hexdigest()[:12]
        (tmp_path / f"{name}.py").write_text(source)
        return f"{name}:port"

    return write


def run(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().out


def outputs(directory, name: str) -> list[str]:
    """``--report-json DIR/NAME.json --junit-xml DIR/NAME.xml``."""
    return ["--report-json", str(directory / f"{name}.json"), "--junit-xml", str(directory / f"{name}.xml")]


def report_of(path) -> dict:
    return json.loads(path.read_text())


# --- blocks: disjoint, each from a seed of its own ------------------------------------------------------


@pytest.mark.keras
def test_every_seed_starts_with_the_simplest_case_so_blocks_after_the_first_leave_it_out():
    """The trap a split sweep falls into: two seeds' first cases are the same (Hypothesis's simplest), so
    "one seed per block" alone would check that case in every block. Block b > 0 leaves it out."""
    assert cases_of(7, 0)[0] == cases_of(8, 0)[0]  # what would repeat, shown to repeat
    blocks = [cases_of(7, b) for b in range(3)]
    assert all(len(b) == 3 for b in blocks)
    everything = [c for b in blocks for c in b]
    assert len(set(everything)) == len(everything), "blocks of one sweep checked the same case twice"
    unsplit = []
    verify(layer="SimpleRNN", max_examples=3, seed=7, on_example=lambda r: unsplit.append(fingerprint(r.case)))
    assert blocks[0] == unsplit  # block 0 is the sweep of that seed as it always was


def test_block_seeds_and_shards_partition_the_sweep():
    assert block_seed(5, 0) == 5
    seeds = {block_seed(5, b) for b in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**32 for s in seeds)
    assert block_seed(5, 1) != block_seed(6, 0) and block_seed(5, 2) != block_seed(6, 1)  # not seed + block
    units = workers.plan(["SimpleRNN", "GRU"], ["float32", "float64"], 7, 3)
    assert [u.examples for u in units[:3]] == [3, 3, 1] and len(units) == 12
    shards = [workers.shard(units, k, 5) for k in range(1, 6)]
    keys = [u.key for s in shards for u in s]
    assert sorted(keys) == sorted(u.key for u in units) and len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: workers.parse_shard("3/2"), "`--shard` must be K/N"),
        (lambda: workers.parse_shard("0/2"), "`--shard` must be K/N"),
        (lambda: workers.parse_shard("1/2/3"), "`--shard` must be K/N"),
        (lambda: workers.shard([], 3, 2), "`index` must be an int in [1, 2]"),
        (lambda: workers.plan(["GRU"], ["float32"], 0), "`examples` must be a positive int"),
        (lambda: workers.run_units([], workers.Job({}), workers=0), "`workers` must be a positive int"),
        (lambda: verify(layer="GRU", max_examples=1, block=-1), "`block` must be an int >= 0"),
        (lambda: verify(layer="GRU", max_examples=1, block=1), "pass `seed`"),
    ],
)
def test_bad_split_arguments_are_refused_by_name(call, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shard", "3/2"], "argument --shard: expected K/N with 1 <= K <= N"),
        (["--workers", "0"], "argument --workers: expected a positive integer"),
        (["--block-size", "-1"], "argument --block-size: expected a positive integer"),
    ],
)
def test_bad_split_options_exit_2_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["verify", *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--shard", "1/2"], "--shard K/N needs --seed S"),
        (["--workers", "2", "--mutants"], "--workers and --shard split a layer sweep: not with --mutants"),
        (["--shard", "1/2", "--seed", "1", "--model", "m.keras"], "not with --mutants or --model"),
        (["--mutants", "--report-json", "r.json"], "--report-json and --junit-xml report a sweep or a model"),
    ],
)
def test_split_options_that_do_not_go_together_exit_2(argv, message, capsys):
    assert main(["verify", *argv]) == 2
    assert message in capsys.readouterr().err


# --- merging reports ---------------------------------------------------------------------------------------


def test_merge_reports_adds_counts_keeps_the_worst_and_refuses_two_sweeps():
    a = Report("GRU", "float32", "engine", 3, "keras 3", examples=2, skipped=1, weak=0, max_abs_error=1e-7,
               max_rel_error=1e-6, max_margin=0.5)  # fmt: skip
    b = Report("GRU", "float32", "engine", 3, "keras 3", examples=3, skipped=0, weak=1, max_abs_error=2e-7,
               max_rel_error=1e-7, max_margin=float("inf"), failures=[Failure("m", "r")])  # fmt: skip
    (merged,) = workers.merge_reports([a, b])
    assert (merged.examples, merged.skipped, merged.weak) == (5, 1, 1)
    assert (merged.max_abs_error, merged.max_rel_error, merged.max_margin) == (2e-7, 1e-6, float("inf"))
    assert merged.failures == [Failure("m", "r")] and not merged.ok
    assert (a.examples, b.examples) == (2, 3)  # the inputs are not changed
    with pytest.raises(ValueError, match="from different sweeps: seed 3 and 4"):
        workers.merge_reports([a, Report("GRU", "float32", "engine", 4, "keras 3", examples=1)])
    back = reports.report_from_dict(json.loads(json.dumps(reports.report_to_dict(merged), allow_nan=False)))
    assert back == merged  # inf travels as "inf"


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """One sweep (SimpleRNN float32, 6 cases in blocks of 2, seed 11) run whole and as shards 1/3, 2/3, 3/3."""
    out = tmp_path_factory.mktemp("shards")
    codes = [main([*SWEEP, "--report-json", str(out / "whole.json")])]
    for k in (1, 2, 3):
        codes.append(main([*SWEEP, "--shard", f"{k}/3", "--report-json", str(out / f"shard{k}.json")]))
    assert codes == [0, 0, 0, 0]
    return out


@pytest.mark.keras
def test_shards_are_disjoint_and_their_merge_is_the_whole_sweep(shards, tmp_path, capsys):
    capsys.readouterr()
    parts = [report_of(shards / f"shard{k}.json") for k in (1, 2, 3)]
    blocks = [[u["block"] for u in p["units"]] for p in parts]
    assert blocks == [[0], [1], [2]]
    assert [p["reports"][0]["examples"] + p["reports"][0]["skipped"] for p in parts] == [2, 2, 2]
    paths = [str(shards / f"shard{k}.json") for k in (3, 1, 2)]  # any order
    code, out = run(["merge", *paths, *outputs(tmp_path, "m")], capsys)
    assert code == 0, out
    assert "3 shards of seed 11" in out and "All cases agree with Keras." in out
    whole, merged = report_of(shards / "whole.json"), report_of(tmp_path / "m.json")
    assert merged["reports"] == whole["reports"]  # every count, worst case, margin and failure
    assert [u["report"] for u in merged["units"]] == [u["report"] for u in whole["units"]]
    assert merged["reports"][0]["examples"] + merged["reports"][0]["skipped"] == 6
    assert ET.parse(tmp_path / "m.xml").getroot().get("tests") == "1"


@pytest.mark.keras
@pytest.mark.parametrize(
    "edit, names, message",
    [
        (None, [1, 2], "Shard(s) 3/3 missing: a merge needs all 3"),
        (None, [1, 2, 2, 3], "Shard 2/3 given twice"),
        (lambda d: d["sweep"].update(seed=12), [1, 2, 3], "is from another sweep than"),
        (lambda d: d["sweep"].update(reference="keras 3.0.0"), [1, 2, 3], "reference 'keras 3.0.0' against"),
        (lambda d: d["shard"].update(count=4), [1, 2, 3], "is shard 2/4"),
        (lambda d: d["units"].clear(), [1, 2, 3], "should hold 1 units of the sweep, holds 0"),
        (lambda d: d.update(version=99), [1, 2, 3], "report version 99"),
        (lambda d: d.update(shard=None), [1, 2, 3], "not a sharded verify report"),
    ],
)
def test_merge_refuses_a_missing_repeated_or_foreign_shard(shards, tmp_path, edit, names, message, capsys):
    paths = []
    for k in names:
        doc = report_of(shards / f"shard{k}.json")
        if edit is not None and k == 2:
            edit(doc)
        path = tmp_path / f"{len(paths)}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    code, out = run(["merge", *paths, "--junit-xml", str(tmp_path / "never.xml")], capsys)
    assert code == 2 and message in " ".join(out.split()), out
    assert not (tmp_path / "never.xml").exists()


def test_merge_refuses_a_file_that_is_no_report(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"schema": "something else"}')
    (tmp_path / "bad.json").write_text("{")
    for name, message in (("x.json", "not a scratch-rnn report"), ("bad.json", "cannot read a JSON report")):
        code, out = run(["merge", str(tmp_path / name)], capsys)
        assert code == 2 and message in out


# --- workers ---------------------------------------------------------------------------------------------------


@pytest.mark.keras
def test_the_installed_reference_is_the_imported_one_without_importing_it(keras):
    import sys

    module, tensorflow_version = workers.installed_reference()
    assert (module.__name__, module.__version__) == (keras.__name__, keras.__version__)
    assert tensorflow_version == sys.modules["tensorflow"].__version__
    with pytest.raises(ValueError, match="`reference` must be one of"):
        workers.installed_reference("keras4")


@pytest.mark.keras  # the workers import it
def test_with_workers_the_main_process_does_not_import_tensorflow(tmp_path):
    """The workers import Keras; the main process only reads versions (its import would delay them)."""
    import subprocess
    import sys

    script = (
        "import sys; from scratch_rnn.cli import main; "
        "code = main(['verify', '--layer', 'SimpleRNN', '--dtype', 'float32', '--examples', '2', '--seed', '1', "
        "'--workers', '2']); print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tensorflow imported: False" in done.stdout and "Reference: keras " in done.stdout


@pytest.mark.keras
def test_two_workers_give_the_result_of_one(tmp_path, capsys):
    argv = ["verify", "--layer", "GRU", "--dtype", "both", "--examples", "4", "--block-size", "2", "--seed", "5"]
    assert main([*argv, "--report-json", str(tmp_path / "one.json")]) == 0
    code, out = run([*argv, "--workers", "2", "--report-json", str(tmp_path / "two.json")], capsys)
    assert code == 0, out
    one, two = report_of(tmp_path / "one.json"), report_of(tmp_path / "two.json")
    assert two["reports"] == one["reports"]
    assert [u["report"] for u in two["units"]] == [u["report"] for u in one["units"]]
    assert {u["worker"] for u in one["units"]} == {"main"}
    assert "main" not in {u["worker"] for u in two["units"]}  # the units did run in worker processes
    assert "8 cases in" in out and "on 2 worker(s)" in out


@pytest.mark.keras
def test_a_failing_run_still_writes_json_and_junit_with_reproducers(module, tmp_path, monkeypatch, capsys):
    import importlib

    verify_module = importlib.import_module("scratch_rnn.testing.verify")
    monkeypatch.setattr(verify_module, "verify", functools.partial(verify_module.verify, shrink_seconds=0))
    argv = ["verify", "--layer", "SimpleRNN", "--dtype", "float32", "--examples", "4", "--block-size", "2"]
    argv += ["--seed", "2", "--candidate", module(MUTANT)]
    code, out = run([*argv, *outputs(tmp_path, "r")], capsys)
    assert code == 1, out
    doc = report_of(tmp_path / "r.json")
    assert doc["ok"] is False and doc["exit_code"] == 1 and doc["environment"]["keras"]
    (report,) = doc["reports"]
    assert report["ok"] is False and report["max_margin"] > 1
    reproducers = [f["reproducer"] for f in report["failures"]]
    assert len(reproducers) == 2  # each block's first failing case
    assert reproducers[0].startswith("reproduce with seed=2 (CLI: --seed 2)")
    assert reproducers[1].startswith("reproduce with seed=2, block=1")
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("testsuites", "1", "1", "0")
    (case,) = suite.iter("testcase")
    assert case.get("name") == "SimpleRNN float32" and "block=1" in case.find("failure").text
    junitparser = pytest.importorskip("junitparser")  # a second, independent reader of the format
    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "r.xml"))
    assert (xml.tests, xml.failures, xml.errors) == (1, 1, 0)


@pytest.mark.keras
def test_a_passing_check_writes_json_and_junit(tmp_path, capsys):
    from scratch_rnn.testing import golden

    golden.record(tmp_path / "rec", layers=("SimpleRNN",), examples=2, dtypes=("float32",))
    code, out = run(["check", str(tmp_path / "rec"), *outputs(tmp_path, "c")], capsys)
    assert code == 0, out
    doc = report_of(tmp_path / "c.json")
    assert doc["command"] == "check" and doc["ok"] and doc["reports"][0]["examples"] == 2
    assert ET.parse(tmp_path / "c.xml").getroot().get("failures") == "0"


@pytest.mark.keras
def test_verify_model_writes_json_and_junit(keras, tmp_path, capsys):
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(4)], name="tiny_gru")
    model.set_weights([w + 0.1 * (i + 1) for i, w in enumerate(model.get_weights())])  # biases not zero
    model.save(tmp_path / "tiny.keras")
    argv = ["verify", "--model", str(tmp_path / "tiny.keras"), "--examples", "2", "--dtype", "both", "--seed", "3"]
    code, out = run([*argv, *outputs(tmp_path, "m")], capsys)
    assert code == 0, out
    doc = report_of(tmp_path / "m.json")
    assert doc["command"] == "verify --model" and doc["sweep"]["seeds"] == [3, 3]
    assert [(r["layer"], r["dtype"], r["ok"]) for r in doc["reports"]] == [
        ("tiny_gru", "float32", True),
        ("tiny_gru", "float64", True),
    ]
    cases = ET.parse(tmp_path / "m.xml").getroot().iter("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("scratch_rnn.verify_model", "tiny_gru float32"),
        ("scratch_rnn.verify_model", "tiny_gru float64"),
    ]


@pytest.mark.keras
def test_a_crashing_worker_fails_its_unit_and_the_run(module, tmp_path, capsys):
    argv = ["verify", "--layer", "SimpleRNN", "--dtype", "both", "--examples", "2", "--seed", "4", "--workers", "2"]
    argv += ["--candidate", module(CRASH), *outputs(tmp_path, "r")]
    code, out = run(argv, capsys)
    assert code == 1, out
    doc = report_of(tmp_path / "r.json")
    float32, float64 = doc["reports"]
    assert float32["ok"] and float32["examples"] == 2  # the healthy unit ran, alone if it had to
    assert not float64["ok"] and "its worker process died while running it" in float64["failures"][0]["message"]
    assert [bool(u["error"]) for u in doc["units"]] == [False, True]
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert (suite.get("failures"), suite.get("errors")) == ("0", "1")


@pytest.mark.keras
def test_a_hung_worker_is_killed_and_its_unit_failed(module):
    job = workers.Job({"seed": 1, "timeout": 600}, functools.partial(unit_arguments, module(HANG), None, "float32"))
    units = workers.plan(["SimpleRNN"], ["float32", "float64"], 2)
    healthy, hung = workers.run_units(units, job, workers=2, stall_seconds=20)
    assert hung.error.startswith("hung: no case finished in 20 s")
    assert not hung.report.ok and "hung" in hung.report.failures[0].message
    # the other worker's unit, broken off when the hung one was killed, is run again, not blamed
    assert not healthy.error and healthy.report.ok and healthy.report.examples == 2


# --- pytest-xdist ---------------------------------------------------------------------------------------------


@pytest.mark.keras  # its inner pytest run imports Keras in each xdist worker
def test_the_plugin_fixture_works_under_pytest_xdist(pytester):
    pytest.importorskip("xdist")
    pytester.makepyfile(
        test_port="""
        import os

        from scratch_rnn.testing.runners import engine_candidate


        def test_gru_port(scratch_rnn_verify):
            scratch_rnn_verify(engine_candidate("GRU"), layer="GRU", max_examples=3, seed=1)
            assert os.environ["PYTEST_XDIST_WORKER"].startswith("gw")


        def test_simple_rnn_port(scratch_rnn_verify):
            scratch_rnn_verify(engine_candidate("SimpleRNN"), layer="SimpleRNN", max_examples=3, seed=1)
            assert os.environ["PYTEST_XDIST_WORKER"].startswith("gw")
    """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
