"""Forecasting quality on the shared series: `lstmkit train forecast` against naive baselines (never a test).

    python benchmarks/forecast.py [--only airline|etth1|etth1-informer] [--seeds 0,1,2] [--threads 1]
                                  [--out runs/benchmarks/forecast]

Each run is the real CLI in a subprocess; its test_metrics.json gives MAE, RMSE, MASE and sMAPE of
the LSTM and of the naive and seasonal-naive forecasts on the same test origins (MASE scaled by
the in-sample seasonal-naive error of the training part). Writes OUT.json and OUT.md.
Target: MASE below seasonal naive on the test part of airline passengers (horizon 12)
and ETTh1 (target OT, horizon 24).
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from task_runs import parse_task_args, run_measured, task_parser, write_markdown  # noqa: E402

RUNS = {
    # Monthly, strong trend and multiplicative yearly season: model log values, correct the last season.
    "airline": {"csv": "timeseries/airline-passengers.csv",
                "flags": ["--target", "Passengers", "--window", "24", "--horizon", "12", "--season", "12",
                          "--log", "--baseline", "seasonal", "--hidden-size", "64", "--epochs", "100",
                          "--batch-size", "16", "--lr", "3e-3"]},
    # Hourly, daily season; Informer's 12/4/4-month split is 60/20/20 % of the 20 months.
    "etth1": {"csv": "timeseries/ETTh1.csv",
              "flags": ["--target", "OT", "--window", "96", "--horizon", "24", "--season", "24",
                        "--valid-fraction", "0.2", "--test-fraction", "0.2", "--baseline", "last",
                        "--hidden-size", "64", "--epochs", "8", "--batch-size", "64", "--lr", "1e-3"]},
    # The published tables' protocol (Informer, Zhou et al. 2021): 12/4/4 months, z-scored with the
    # training part's statistics, MSE/MAE of the standardised series; otherwise the defaults.
    "etth1-informer": {"csv": "timeseries/ETTh1.csv",
                       "flags": ["--target", "OT", "--split", "informer", "--window", "96",
                                 "--horizon", "24", "--season", "24"]},
}


def main() -> int:
    parser = task_parser(__doc__.splitlines()[0], "forecast")
    parser.add_argument("--only", choices=sorted(RUNS), action="append")
    parser.add_argument("--seeds", default="0,1,2")
    args, extra, root = parse_task_args(parser)
    seeds = [int(s) for s in args.seeds.split(",")]
    report, rows = {}, []
    for name in args.only or sorted(RUNS):
        spec = RUNS[name]
        runs = []
        for seed in seeds:
            run_dir = args.out / f"{name}-seed{seed}"
            argv = ["train", "forecast", "--csv", str(root / spec["csv"]), *spec["flags"], *extra,
                    "--seed", str(seed), "--out", str(run_dir), "--overwrite", "--no-progress", "--device", "cpu"]
            result = run_measured(argv, args.out / f"{name}-seed{seed}.log", args.threads)
            if result["status"] == 0:
                result["metrics"] = json.loads((run_dir / "test_metrics.json").read_text())
            runs.append(result)
            print(name, seed, result["status"], result["wall_minutes"], "min", flush=True)
        report[name] = runs
        done = [r["metrics"] for r in runs if "metrics" in r]
        for model in ("lstm", "naive", "seasonal_naive"):
            values = {k: [m["test"][model][k] for m in done]
                      for k in ("mae", "rmse", "mase", "smape", "z_mse", "z_mae")}
            spread = f" ± {statistics.stdev(values['mase']):.3f}" if len(done) > 1 and model == "lstm" else ""
            rows.append([name, model, *(f"{statistics.mean(values[k]):.4g}" for k in ("mae", "rmse")),
                         f"{statistics.mean(values['mase']):.3f}{spread}", f"{statistics.mean(values['smape']):.2f}",
                         *(f"{statistics.mean(values[k]):.4f}" for k in ("z_mse", "z_mae"))])
        rows.append([name, "(runs)", f"{len(done)} seeds", f"{sum(r['wall_minutes'] for r in runs):.1f} min wall",
                     f"{done[0]['test_origins'] if done else '-'} test origins", "", "", ""])
    (args.report_dir / f"{args.out.name}.json").write_text(json.dumps(report, indent=1))
    loads = [r["load_before"] for runs in report.values() for r in runs]
    notes = [f"Mean over seeds {seeds} (MASE ± standard deviation over seeds for the LSTM); baselines are "
             "deterministic. MASE scale: in-sample seasonal-naive MAE on the training part.",
             f"Load average before the runs: {loads[0] if loads else '-'}; {args.threads} thread(s).",
             *[f"`lstmkit train forecast --csv {RUNS[n]['csv']} {' '.join(RUNS[n]['flags'])}`" for n in report]]
    write_markdown(args.report_dir / f"{args.out.name}.md", "Forecasting: LSTM against naive baselines (test part)",
                   ["series", "model", "MAE", "RMSE", "MASE", "sMAPE %", "z-MSE", "z-MAE"], rows, notes)
    print((args.report_dir / f"{args.out.name}.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
