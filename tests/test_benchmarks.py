"""The benchmark scripts' own logic (their measurements run in CI and by hand, not here)."""
import pytest

import benchmark_scripts


DEMO_OUTPUT = """frozen model: /x/demo_t5 (tiny T5 1.1 trained on synthetic tasks with task words)

accuracy before tuning (untrained prompt, validation): 0.0% (chance 50%; 100% of answers were not a label at all)
accuracy after tuning (best prompt, validation):       98.5%
accuracy after tuning (best prompt, held-out test):    100.0%
prompt (8 x 64) saved to /tmp/d/best/encoder.prompt.prompt.npy
"""


def test_demo_time_reads_the_accuracies_the_demo_prints():
  demo_time = benchmark_scripts.load("demo_time")
  assert demo_time.parse_output(DEMO_OUTPUT) == {
      "accuracy_before": 0.0, "accuracy_validation": 98.5, "accuracy_test": 100.0}
  with pytest.raises(ValueError, match="held-out test"):
    demo_time.parse_output(DEMO_OUTPUT.replace("held-out test", "test"))


def test_rank_classification_methods_agree_and_fill_the_table():
  bench = benchmark_scripts.load("rank_classification")
  args = bench._flags(["--size=tiny", "--batch=4", "--inputs=8", "--options=2,3",  # pylint: disable=protected-access
                       "--repeats=1"])
  result = bench.run(args)
  assert [r["options"] for r in result["rows"]] == [2, 3]
  for row in result["rows"]:
    assert max(row["max_rel_diff_vs_per_option"].values()) < 1e-6
    # The K/V saving shows in XLA's flop count: shared < repeated < per option.
    flops = row["flops"]
    assert flops["shared"] < flops["repeated"] < flops["per_option"]
  lines = bench.table(result).splitlines()
  assert len(lines) == 4 and lines[2].startswith("| 2 |") and lines[3].startswith("| 3 |")


def test_mixed_task_batches_give_the_per_task_predictions_in_fewer_calls():
  bench = benchmark_scripts.load("mixed_tasks")
  args = bench._flags(["--size=tiny", "--tasks=1,4", "--per_task=5", "--batch=8",  # pylint: disable=protected-access
                       "--inputs=8", "--targets=2", "--prompt_length=2", "--repeats=1"])
  result = bench.run(args)
  assert [r["tasks"] for r in result["rows"]] == [1, 4]
  for row in result["rows"]:
    assert row["same_predictions"]
  assert [(r["calls_mixed"], r["calls_one_by_one"]) for r in result["rows"]] == [(1, 1), (3, 4)]


def test_vs_peft_runs_both_sides_and_divides_ours_by_theirs():
  bench = benchmark_scripts.load("vs_peft")
  args = bench._flags(["--size=tiny", "--batch=2", "--inputs=6", "--targets=3",  # pylint: disable=protected-access
                       "--prompt_length=2", "--steps=1"])
  ours, theirs = bench.run_ours(args), bench.run_peft(args)
  assert ours["flops"] > 0 and ours["xla_plan_gib"] > 0
  for run in (ours, theirs):
    assert set(run["times_s"]) == set(bench.PHASES)
  result = bench.summarize(args, {"ours": [ours], "peft": [theirs]})
  for phase in bench.PHASES:
    want = ours["times_s"][phase][0] / theirs["times_s"][phase][0]
    assert abs(result["ratio_ours_over_peft"][phase] - want) < 1e-9
  assert abs(result["achieved_gflops"] * ours["times_s"]["train_step"][0]
             - ours["flops"] / 1e9) < 1e-6
  lines = bench.table(result).splitlines()
  assert lines[0].startswith("| phase | ours") and "ours / PEFT" in lines[0]
  assert [l.split(" | ")[0] for l in lines[2:5]] == ["| encoder forward", "| loss forward",
                                                     "| train step"]
  alone = bench.summarize(args, {"ours": [ours]})
  assert alone["ratio_ours_over_peft"] == {} and "PEFT" not in bench.table(alone)


def test_memory_plan_adds_up_xlas_plan_and_remat_shrinks_it():
  bench = benchmark_scripts.load("memory_plan")
  args = bench._flags(["--sizes=tiny", "--meshes=1x1", "--remats=none,full", "--batch=4",  # pylint: disable=protected-access
                       "--inputs=32", "--targets=4", "--prompt_length=4", "--dtype=float32"])
  assert bench.configurations(args) == [("tiny", (1, 1), "none", False, 1),
                                        ("tiny", (1, 1), "none", True, 1),
                                        ("tiny", (1, 1), "full", True, 1)]
  result = bench.run(args)
  unrolled, scanned, remat = result["rows"]
  for r in result["rows"]:
    want = r["arguments_gib"] + r["output_gib"] + r["temp_gib"] - r["alias_gib"]
    assert abs(r["per_device_gib"] - want) < 1e-12 and r["fits_gb"] == [16, 40, 80]
  assert remat["temp_gib"] < scanned["temp_gib"]
  assert remat["arguments_gib"] == scanned["arguments_gib"] == unrolled["arguments_gib"]
  lines = bench.table(result).splitlines()
  assert len(lines) == 2 + 3 and "| tiny | 1x1 | scanned | full |" in lines[-1]


def test_multitask_table_has_one_row_per_setting_and_a_column_per_task():
  bench = benchmark_scripts.load("multitask")
  result = {"tasks": ["taskless_demo_first", "taskless_demo_count"], "rows": [
      {"setting": "one prompt per task", "steps": 600, "params": 1024,
       "taskless_demo_first": 100.0, "taskless_demo_count": 95.0, "mean": 97.5},
      {"setting": "multi-task (add)", "steps": 300, "params": 1536,
       "taskless_demo_first": 99.5, "taskless_demo_count": 96.0, "mean": 97.75}]}
  lines = bench.table(result).splitlines()
  assert lines[0] == "| setting | steps | params | first | count | mean |"
  assert lines[2] == "| one prompt per task | 600 | 1,024 | 100.0 | 95.0 | 97.5 |"
  assert lines[3].startswith("| multi-task (add) | 300 | 1,536 | 99.5 | 96.0 |")
