"""Training engine: exact resume after a kill, NaN stop with an intact checkpoint, schedules,
configs, callbacks, DDP (2 gloo processes) equivalence, and the CLI end to end."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fixtures_data import save_datasets
from robustviz import data, models, runs
from robustviz.train import NonFiniteLossError, Schedule, TrainConfig, Trainer, resolve_milestones

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- stand-ins
class NoisyNAT:
    """Cross-entropy on inputs jittered with noise drawn from the trainer's generator, so
    an exact resume needs the generator's state, not only the weights."""

    def __call__(self, model, x, y, *, attack_bn="eval", bf16=False, generator=None):
        noise = torch.rand(x.shape, generator=generator, device=x.device)
        loss = F.cross_entropy(model((x + 0.05 * noise).clamp(0, 1)), y)
        return loss, {"ce": float(loss.detach())}


class NaNAt:
    """NAT that returns a NaN loss (and logs the total first, then a NaN 'ce' term, as the
    robustviz defenses do) from call number ``at``."""

    def __init__(self, at):
        self.at, self.calls = at, 0

    def __call__(self, model, x, y, *, attack_bn="eval", bf16=False, generator=None):
        self.calls += 1
        loss = F.cross_entropy(model(x), y)
        if self.calls >= self.at:
            loss = loss * float("nan")
        return loss, {"loss": float(loss.detach()), "ce": float(loss.detach())}


class NaNGradAt(NaNAt):
    """From call ``at`` adds ``sqrt(0 * b)``: the loss stays finite, its gradient is NaN."""

    def __call__(self, model, x, y, *, attack_bn="eval", bf16=False, generator=None):
        self.calls += 1
        loss = F.cross_entropy(model(x), y)
        if self.calls >= self.at:
            loss = loss + torch.sqrt(model.classifier.bias[0] * 0.0)
        return loss, {"ce": float(loss.detach())}


class FGSMVal:
    """A one-step Linf attack (for robust validation without robustviz.attacks)."""

    def __init__(self, eps):
        self.eps = eps

    def __call__(self, model, x, y):
        x = x.clone().requires_grad_(True)
        grad, = torch.autograd.grad(F.cross_entropy(model(x), y), x)
        return (x + self.eps * grad.sign()).clamp(0, 1).detach()


@pytest.fixture(scope="module")
def digits():
    """Small subsets keep every fit to a few seconds: 500 training and 200 test images."""
    return load_small()


def load_small():
    return data.load("digits", "train", n=500, seed=0), data.load("digits", "test", n=200, seed=0)


def tiny_model(train):
    return models.build("tinycnn", num_classes=10, in_channels=1, input_size=8, mean=train.mean,
                        std=train.std, width=8, hidden=32, seed=0)


def strip_time(history):
    return [{k: v for k, v in h.items() if k != "time_s"} for h in history]


def weights(path):
    from safetensors.torch import load_file
    return load_file(str(Path(path) / runs.WEIGHTS))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# ----------------------------------------------------------------------------- schedules
def test_piecewise_schedule_values():
    s = Schedule("piecewise", lr=0.1, epochs=10, steps_per_epoch=4, milestones=(0.5, 0.75), gamma=0.1)
    assert s.milestones == (5.0, 7.5)
    assert s(0) == pytest.approx(0.1) and s(19) == pytest.approx(0.1)        # epoch 4.75
    assert s(20) == pytest.approx(0.01) and s(29) == pytest.approx(0.01)     # epochs 5 .. 7.25
    assert s(30) == pytest.approx(0.001) and s(39) == pytest.approx(0.001)   # from 7.5
    by_epoch = Schedule("piecewise", lr=0.1, epochs=100, steps_per_epoch=1, milestones=(75, 90))
    assert [by_epoch(e) for e in (74, 75, 89, 90)] == pytest.approx([0.1, 0.01, 0.01, 0.001])


def test_cosine_and_warmup_values():
    s = Schedule("cosine", lr=0.2, epochs=4, steps_per_epoch=10, min_lr=0.0)
    for step in (0, 7, 20, 33, 39):
        assert s(step) == pytest.approx(0.1 * (1 + math.cos(math.pi * step / 40)))
    w = Schedule("cosine", lr=0.2, epochs=4, steps_per_epoch=10, warmup_epochs=1)
    # linear ramp (s+1)/10 of the cosine value over the first epoch, plain cosine after
    assert w(0) == pytest.approx(0.2 * 0.1)
    assert w(4) == pytest.approx(0.2 * 0.5)
    assert w(10) == pytest.approx(0.2 * (1 + math.cos(0.0)) / 2)
    assert w(25) == pytest.approx(0.1 * (1 + math.cos(math.pi * 1.5 / 3)))
    c = Schedule("constant", lr=0.05, epochs=3, steps_per_epoch=2, warmup_epochs=0.5)
    assert [c(i) for i in range(4)] == pytest.approx([0.05, 0.05, 0.05, 0.05])
    c2 = Schedule("constant", lr=0.05, epochs=3, steps_per_epoch=4, warmup_epochs=1)
    assert [c2(i) for i in range(5)] == pytest.approx([0.0125, 0.025, 0.0375, 0.05, 0.05])


def test_schedule_rejects_bad_values():
    with pytest.raises(ValueError, match="schedule"):
        Schedule("linear", lr=0.1, epochs=2, steps_per_epoch=1)
    with pytest.raises(ValueError, match="lr"):
        Schedule("constant", lr=0.0, epochs=2, steps_per_epoch=1)
    with pytest.raises(ValueError, match="milestones"):
        resolve_milestones([0.5, -1], 10)
    with pytest.raises(ValueError, match="warmup_epochs"):
        Schedule("cosine", lr=0.1, epochs=2, steps_per_epoch=1, warmup_epochs=2)


class Probe(nn.Module):
    """One scalar parameter; the spy defense below has loss ``w`` (gradient 1), so with plain
    SGD each step moves ``w`` by exactly ``-lr``."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))


def test_trainer_sets_the_scheduled_lr_at_every_step(digits):
    train, _ = digits
    seen = []

    def spy(model, x, y, *, attack_bn="eval", bf16=False, generator=None):
        seen.append(float(model.w.detach()))
        return model.w * 1.0, {}

    model = Probe()
    trainer = Trainer(defense=spy, epochs=2, lr=0.1, momentum=0.0, weight_decay=0.0, batch_size=200,
                      schedule="piecewise", milestones=(1,), warmup_epochs=0.5, val_attack=None,
                      progress=False)
    trainer.fit(model, train)
    seen.append(float(model.w.detach()))
    lrs = [a - b for a, b in zip(seen, seen[1:])]
    # 3 steps per epoch; linear warm-up over 1.5 steps, then piecewise decay at epoch 1
    assert lrs == pytest.approx([0.1 / 1.5, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert trainer.history_[-1]["lr"] == pytest.approx(0.01)
    # the epoch loss is the batch-size-weighted mean of the per-step losses (w before each step)
    sizes = [200, 200, len(train) - 400]
    for e, h in enumerate(trainer.history_):
        want = sum(n * w for n, w in zip(sizes, seen[3 * e:3 * e + 3])) / len(train)
        assert h["loss"] == pytest.approx(want) and h["images"] == len(train)


# ----------------------------------------------------------------------------- config
def test_config_yaml_json_roundtrip(tmp_path):
    cfg = TrainConfig(data={"name": "digits", "n": 500, "seed": 3},
                      model={"name": "tinycnn", "width": 8},
                      defense={"name": "trades", "beta": 6.0, "eps": 0.1, "terms": [{"name": "vat", "weight": 2.0}]},
                      train={"epochs": 4, "lr": 0.05, "milestones": [0.5, 0.75], "augment": ["crop", "flip"],
                             "bf16": True},
                      eval={"eps": 0.1, "n": 2000}, paper="001", paper_table="Table 2", out="runs/x")
    for suffix in (".yaml", ".json"):
        path = cfg.save(tmp_path / f"c{suffix}")
        back = TrainConfig.load(path)
        assert back == cfg and back.to_dict() == cfg.to_dict()
    assert json.loads((tmp_path / "c.json").read_text())["defense"]["terms"][0]["weight"] == 2.0
    trainer = cfg.trainer(progress=False)
    assert trainer.epochs == 4 and trainer.defense == cfg.defense and trainer.progress is False


def test_config_rejects_unknown_keys(tmp_path):
    with pytest.raises(ValueError, match="lrr"):
        TrainConfig(train={"lrr": 0.1})
    with pytest.raises(ValueError, match="colour"):
        TrainConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match="'model'"):
        TrainConfig(model={"width": 3})
    bad = tmp_path / "c.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ValueError, match="YAML"):
        TrainConfig.load(bad)
    with pytest.raises(ValueError, match=".toml"):
        TrainConfig.load(tmp_path / "c.toml")


def test_shipped_configs_parse():
    files = sorted((ROOT / "configs").rglob("*.yaml"))
    names = {p.relative_to(ROOT / "configs").as_posix() for p in files}
    for want in ("paper000_resnet18_cl.yaml", "paper001_resnet20_ascl_adv.yaml",
                 "paper001_resnet20_leaked_ascl_trades.yaml", "paper004_resnet18_trades_ancra.yaml",
                 "baseline_trades.yaml", "baseline_mart.yaml"):
        assert want in names
    from robustviz import defenses

    import yaml

    from robustviz.train import PretrainConfig

    from robustviz.cli import build_parser

    for path in files:
        raw = yaml.safe_load(path.read_text())
        if "pipeline" in raw:   # a zoo entry made by CLI commands (pretraining, then finetuning)
            assert path.parent.parent.name == "zoo" and set(raw) == {"pipeline"}, path
            for line in raw["pipeline"]:
                args = build_parser().parse_args(line.split())
                assert args.command in ("pretrain", "finetune"), line
                if args.command == "pretrain":
                    assert (ROOT / args.config).is_file(), line
            assert args.command == "finetune" and args.out == "{out}", path   # the last writes the entry
            continue
        if {"pretrain", "finetune"} & set(raw):   # pretraining/finetuning configs
            cfg = PretrainConfig.load(path).train   # (tests/test_pretrain.py runs them)
            defenses.build(dict(cfg.defense))
            continue
        cfg = TrainConfig.load(path)
        if path.parent.parent.name == "zoo":     # teaching zoo: configs/zoo/<dataset>/<name>.yaml
            assert cfg.data["name"] == path.parent.name and cfg.model["name"] == "tinycnn", path
            assert cfg.out == f"data/zoo/{path.parent.name}/{path.stem}", path
        elif path.parent.name == "fast":   # `robustviz speedrun` recipes: single-step, guarded
            assert cfg.defense["name"] in ("fgsm_rs", "nfgsm"), path
            assert cfg.diagnostics.get("overfit_guard"), path
        elif not path.parent.name == "teach":
            assert cfg.paper_table, path
        else:
            assert cfg.data["name"] == "fashion-mnist" and cfg.model["name"] == "tinycnn", path
        # every defense spec builds, and its trainer options are valid
        defense = defenses.build(dict(cfg.defense))
        assert defense.config()["name"] == cfg.defense["name"]
        cfg.trainer()._check_options()


# ----------------------------------------------------------------------------- options
def test_bad_options_raise_before_training(digits):
    train, _ = digits
    model = tiny_model(train)
    with pytest.raises(ValueError, match="optimizer"):
        Trainer(optimizer="rmsprop").fit(model, train)
    with pytest.raises(ValueError, match="epochs"):
        Trainer(epochs=0).fit(model, train)
    with pytest.raises(ValueError, match="attack_bn"):
        Trainer(attack_bn="test").fit(model, train)
    with pytest.raises(TypeError, match="defense"):
        Trainer(defense=3).fit(model, train)
    with pytest.raises(TypeError, match="callbacks"):
        Trainer(defense=NoisyNAT()).fit(model, train, callbacks=[1])
    with pytest.raises(ValueError, match="channel"):
        wrong = models.build("tinycnn", num_classes=10, in_channels=3, input_size=8)
        Trainer(defense=NoisyNAT()).fit(wrong, train)


# ----------------------------------------------------------------------------- callbacks
@pytest.mark.slow
def test_callbacks_get_model_epoch_run_dir_and_log_metrics(digits, tmp_path):
    train, test = digits
    model = tiny_model(train)
    calls = []

    def cb(*, model, epoch, run_dir):
        calls.append((model, epoch, run_dir, model.training))
        return {"weight_norm": float(sum(p.detach().norm() ** 2 for p in model.parameters()))}

    def silent(**kw):
        calls.append(("silent", kw["epoch"]))

    trainer = Trainer(defense=NoisyNAT(), epochs=2, lr=0.05, batch_size=128, val_size=150,
                      val_attack=FGSMVal(0.1), progress=False)
    trainer.fit(model, train, val=test, run_dir=tmp_path / "run", callbacks=[cb, silent])
    assert [c[1] for c in calls] == [1, 1, 2, 2]
    assert all(c[0] is model and c[2] == tmp_path / "run" and c[3] for c in calls if c[0] != "silent")
    norms = [h["weight_norm"] for h in trainer.history_]
    assert norms[-1] == pytest.approx(float(sum(p.detach().norm() ** 2 for p in model.parameters())))
    lines = runs.read_metrics(tmp_path / "run", kind="epoch")
    assert [line["weight_norm"] for line in lines] == pytest.approx(norms)
    # validation on the fixed subset: robust <= clean, and the numbers are the trainer's own
    last = trainer.history_[-1]
    assert last["val_n"] == 150 and 0 <= last["val_robust_acc"] <= last["val_clean_acc"] <= 1
    again = trainer.evaluate(model, trainer._val_subset(test), attack=FGSMVal(0.1))
    assert again["clean_acc"] == pytest.approx(last["val_clean_acc"])
    assert again["robust_acc"] == pytest.approx(last["val_robust_acc"])

    def clash(**kw):
        return {"loss": 1.0}

    with pytest.raises(ValueError, match="reserved"):
        Trainer(defense=NoisyNAT(), epochs=1, val_attack=None, progress=False).fit(
            tiny_model(train), train, callbacks=[clash])


# ----------------------------------------------------------------------------- resume
# Runs its stages (JSON [mode, run_dir] pairs) in order in one one-thread process. A process
# costs about 4 s of CPU before it trains (torch, its compiler stack that the optimizer
# imports, scikit-learn for digits), so the reference run and the run to be killed share
# one: the reference is its first stage (a fresh process), the killed run's epoch 1 follows
# and is compared through the resumed weights, so anything it inherited from the reference
# stage would show as a difference, not hide one. The data come from the test's own file
# (the tensors load_small gives), so no process imports scikit-learn.
RESUME_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    from test_train import NoisyNAT, tiny_model, resume_trainer
    from fixtures_data import load_datasets

    def stall(*, model, epoch, run_dir):
        if epoch == 2:       # epoch 1 is on disk; wait here to be killed
            time.sleep(600)

    for mode, run_dir in json.loads(sys.argv[3]):
        train, _ = load_datasets(sys.argv[2])
        if mode == "full":
            resume_trainer().fit(tiny_model(train), train, run_dir=run_dir)
        elif mode == "stall":
            resume_trainer().fit(tiny_model(train), train, run_dir=run_dir, callbacks=[stall])
        else:
            resume_trainer().fit(tiny_model(train), train, resume=run_dir)
        print(f"{mode} {run_dir}: done", flush=True)
""")


def resume_trainer(**kw):
    opts = dict(defense=NoisyNAT(), epochs=3, lr=0.05, momentum=0.9, batch_size=100, milestones=(0.5,),
                augment=("crop", "flip"), val_attack=None, progress=False)
    return Trainer(**{**opts, **kw})


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(digits, tmp_path):
    """Every stage runs in a one-thread subprocess (the reference and the resume each the
    first stage of a fresh one), so the comparison is bit for bit and cannot depend on what
    earlier tests did to this process."""
    train, _ = digits
    script, data_file = tmp_path / "job.py", tmp_path / "data.pt"
    script.write_text(RESUME_SCRIPT)
    save_datasets(data_file, load_small())

    def job(*stages, **kw):
        return subprocess.Popen([sys.executable, str(script), str(Path(__file__).parent), str(data_file),
                                 json.dumps([[mode, str(run_dir)] for mode, run_dir in stages])],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

    def finish(proc):
        out = proc.communicate(timeout=300)[0].decode()
        assert proc.returncode == 0, out

    killed = tmp_path / "killed"
    proc = job(("full", tmp_path / "full"), ("stall", killed))
    try:
        deadline = time.time() + 300
        while not (killed.exists() and runs.read_metrics(killed, kind="epoch")):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "the training subprocess never finished epoch 1"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"full {tmp_path / 'full'}: done" in proc.stdout.read().decode()
    proc.stdout.close()
    full_history = runs.read_metrics(tmp_path / "full", kind="epoch")
    assert len(full_history) == 3
    assert runs.load_state(killed / runs.STATE)["epoch"] == 1

    finish(job(("resume", killed)))
    assert_same_weights(tmp_path / "full", killed)
    assert strip_time(runs.read_metrics(killed, kind="epoch")) == strip_time(full_history)
    assert runs.load_run(killed).config["train"]["epochs"] == 3

    # resuming a finished run trains nothing; changing the maths is refused
    before = weights(killed)
    resume_trainer().fit(tiny_model(train), train, resume=killed)
    assert all(torch.equal(before[k], v) for k, v in weights(killed).items())
    with pytest.raises(ValueError, match="lr"):
        resume_trainer(lr=0.1).fit(tiny_model(train), train, resume=killed)
    with pytest.raises(ValueError, match="resume="):
        resume_trainer().fit(tiny_model(train), train, run_dir=killed)


@pytest.mark.slow
def test_interrupted_in_process_run_resumes_exactly(digits, tmp_path):
    """Same property without a subprocess: stop by raising from a callback after epoch 1."""
    train, _ = digits
    full = resume_trainer(epochs=2).fit(tiny_model(train), train, run_dir=tmp_path / "full")

    def boom(*, model, epoch, run_dir):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resume_trainer(epochs=2).fit(tiny_model(train), train, run_dir=tmp_path / "cut", callbacks=[boom])
    assert runs.load_state(tmp_path / "cut" / runs.STATE)["epoch"] == 1
    resume_trainer(epochs=2).fit(tiny_model(train), train, resume=tmp_path / "cut")
    assert_same_weights(tmp_path / "full", tmp_path / "cut")
    assert full.history_[-1]["loss"] == runs.read_metrics(tmp_path / "cut", kind="epoch")[-1]["loss"]


# ----------------------------------------------------------------------------- NaN
@pytest.mark.slow
def test_nan_loss_stops_naming_epoch_batch_term_and_keeps_checkpoint(digits, tmp_path):
    train, _ = digits
    steps = math.ceil(len(train) / 100)            # 5 batches per epoch
    opts = dict(epochs=3, lr=0.05, batch_size=100, schedule="constant", val_attack=None, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, batch 3: term 'ce' = nan; the last good checkpoint .* \(epoch 1\) is intact") as info:
        Trainer(defense=NaNAt(steps + 4), **opts).fit(tiny_model(train), train, run_dir=tmp_path / "nan")
    assert (info.value.epoch, info.value.batch, info.value.term) == (2, 3, "ce")
    # the checkpoint is epoch 1's, bit-identical to a run that stopped there
    Trainer(defense=NaNAt(10 ** 9), **{**opts, "epochs": 1}).fit(tiny_model(train), train,
                                                                  run_dir=tmp_path / "one")
    assert_same_weights(tmp_path / "one", tmp_path / "nan")
    state = runs.load_state(tmp_path / "nan" / runs.STATE)
    assert state["epoch"] == 1 and len(state["history"]) == 1
    run = runs.load_run(tmp_path / "nan")
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    events = runs.read_metrics(tmp_path / "nan", kind="event")
    assert events == [{"kind": "event", "event": "non_finite_loss", "epoch": 2, "batch": 3, "term": "ce",
                       "value": "nan"}]

    # a finite loss whose gradient is NaN stops before the optimizer writes NaN into the weights
    model = tiny_model(train)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, batch 2: gradient norm = nan") as info:
        Trainer(defense=NaNGradAt(3), **opts).fit(model, train, run_dir=tmp_path / "grad")
    assert info.value.term == "gradient"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (tmp_path / "grad" / runs.STATE).exists()


# ----------------------------------------------------------------------------- defense params
class ScaledNAT(nn.Module):
    """NAT with a learnable logit scale: a defense with parameters of its own."""

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, model, x, y, *, attack_bn="eval", bf16=False, generator=None):
        loss = F.cross_entropy(model(x) * self.log_scale.exp(), y)
        return loss, {"ce": float(loss.detach()), "scale": float(self.log_scale.detach().exp())}


@pytest.mark.slow
def test_defense_parameters_are_trained_and_checkpointed(digits, tmp_path):
    train, _ = digits
    defense = ScaledNAT()
    Trainer(defense=defense, epochs=1, lr=0.05, batch_size=100, val_attack=None, progress=False).fit(
        tiny_model(train), train, run_dir=tmp_path / "r")
    assert float(defense.log_scale.detach()) != 0.0
    state = runs.load_state(tmp_path / "r" / runs.STATE)
    assert torch.equal(state["defense"]["log_scale"], defense.log_scale.detach())


# ----------------------------------------------------------------------------- DDP
# The data come from the test's own file (the tensors load_small gives): each rank would
# otherwise spend 1.4 s of CPU importing scikit-learn for digits.
DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    import torch
    from safetensors.torch import save_file
    sys.path.insert(0, sys.argv[2])
    from test_train import ScaledNAT, tiny_model, FGSMVal
    from fixtures_data import load_datasets
    from robustviz.train import Trainer

    torch.set_num_threads(1)
    train, test = load_datasets(sys.argv[3])
    model = tiny_model(train)
    t = Trainer(defense=ScaledNAT(), epochs=2, lr=0.05, batch_size=63, val_size=150,
                val_attack=FGSMVal(0.1), progress=False)
    t.fit(model, train, val=test, run_dir=sys.argv[1])
    if int(os.environ["RANK"]) == 1:   # rank 1 reports what it holds: the same weights
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sys.argv[1] + "_rank1.safetensors")
""")


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_one_process(digits, tmp_path):
    train, test = digits
    script, data_file = tmp_path / "ddp_job.py", tmp_path / "data.pt"
    script.write_text(DDP_SCRIPT)
    save_datasets(data_file, load_small())
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(out), str(Path(__file__).parent), str(data_file)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout + res.stderr

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = tiny_model(train)
        single = Trainer(defense=ScaledNAT(), epochs=2, lr=0.05, batch_size=63, val_size=150,
                         val_attack=FGSMVal(0.1), progress=False)
        single.fit(model, train, val=test, run_dir=tmp_path / "single")
    finally:
        torch.set_num_threads(threads)
    ddp_hist = runs.read_metrics(out, kind="epoch")
    assert len(ddp_hist) == 2
    for a, b in zip(ddp_hist, single.history_):
        assert a["images"] == b["images"] == len(train)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["train_scale"] == pytest.approx(b["train_scale"], rel=1e-4)
        assert a["val_n"] == b["val_n"] == 150
        assert a["val_clean_acc"] == pytest.approx(b["val_clean_acc"], abs=1 / 150 + 1e-9)
        assert a["val_robust_acc"] == pytest.approx(b["val_robust_acc"], abs=2 / 150 + 1e-9)
    wd, ws = weights(out), weights(tmp_path / "single")
    for k in ws:
        assert torch.allclose(wd[k], ws[k], atol=1e-4, rtol=1e-4), k
    from safetensors.torch import load_file
    rank1 = load_file(str(out) + "_rank1.safetensors")
    for k in ws:
        assert torch.equal(rank1[k], wd[k]), k   # rank 1 holds rank 0's weights; only rank 0 wrote


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_train_digits_end_to_end(tmp_path, capsys):
    from robustviz.cli import main

    # a JSON config with flags on top of it (the flags win); the config is saved into the run
    cfg = tmp_path / "cfg.json"
    TrainConfig(data={"name": "digits", "n": 800}, model={"name": "tinycnn", "width": 16},
                defense={"name": "nat"}, train={"epochs": 3, "batch_size": 64, "lr": 0.05, "val_size": 100},
                eval={"n": 200}, paper_table="teaching").save(cfg)
    out = tmp_path / "pgd_at"
    code = main(["train", "--config", str(cfg), "--defense", "pgd_at", "--epochs", "1", "--eps", "0.1",
                 "--steps", "2", "--step-size", "0.05", "--n-train", "500", "--device", "cpu", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("final:") and "PGD-20" in last and "clean" in last
    run = runs.load_run(out)
    assert run.config["defense"]["name"] == "pgd_at" and run.config["defense"]["steps"] == 2
    assert run.config["defense"]["eps"] == 0.1 and run.config["data"]["name"] == "digits"
    assert run.config["data"]["n"] == 500 and run.config["model"]["width"] == 16
    assert run.config["train"]["epochs"] == 1 and run.config["train"]["eps"] == 0.1
    assert run.config["paper_table"] == "teaching"
    saved = TrainConfig.load(out / "train_config.yaml")
    assert saved.defense["name"] == "pgd_at" and saved.train["epochs"] == 1 and saved.train["batch_size"] == 64
    epochs = runs.read_metrics(out, kind="epoch")
    assert len(epochs) == 1 and epochs[0]["val_n"] == 100
    assert epochs[0]["val_robust_acc"] <= epochs[0]["val_clean_acc"]
    final = runs.read_metrics(out, kind="final")[-1]
    assert final["n"] == 200 and final["pgd20_acc"] <= final["clean_acc"]
    # the loaded run reproduces the printed clean accuracy on the same 200 test images
    test = data.load("digits", "test", n=200, seed=0)
    with torch.no_grad():
        acc = (run.model(test.x).argmax(1) == test.y).float().mean().item()
    assert acc == pytest.approx(final["clean_acc"], abs=1e-6)
    assert f"clean {100 * final['clean_acc']:.1f}%" in last
    assert not runs.read_metrics(out, kind="rdiv")             # diagnostics are opt-in


@pytest.mark.slow
def test_cli_train_records_rdiv_per_epoch_for_the_report(tmp_path, capsys):
    from robustviz.cli import main
    from robustviz.diagnostics import RDivCallback
    from robustviz.report import report

    out = tmp_path / "at"
    assert main(["train", "--dataset", "digits", "--model", "tinycnn", "--defense", "pgd_at",
                 "--eps", "0.1", "--steps", "2", "--step-size", "0.05", "--epochs", "2", "--lr", "0.05",
                 "--val-size", "50", "--n-test", "100", "--rdiv-every", "1", "--rdiv-n", "120",
                 "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    capsys.readouterr()
    assert TrainConfig.load(out / "train_config.yaml").diagnostics == {"rdiv_every": 1, "n": 120}
    rec = runs.read_metrics(out, kind="rdiv")
    assert [r["epoch"] for r in rec] == [1, 2] and all(r["n"] == 120 for r in rec)
    epochs = runs.read_metrics(out, kind="epoch")
    assert [e["rdiv"] for e in epochs] == [r["rdiv"] for r in rec]   # also in the epoch lines
    # the recorded number is the callback's own on the saved weights (PGD-10 at eps 0.1)
    from robustviz.attacks import PGD

    cb = RDivCallback(data.load("digits", "test"), PGD(eps=0.1, step_size=0.025, steps=10), n=120)
    again = cb(model=runs.load_run(out).model, epoch=2)
    assert again["rdiv"] == pytest.approx(rec[-1]["rdiv"], rel=1e-5)
    assert 0 <= rec[-1]["rdiv_robust_acc"] <= rec[-1]["rdiv_clean_acc"] <= 1
    # and the report draws them (paper 001 Fig. 2b): its training section, the one section
    # that reads R-DIV records (the others attack and draw the same with or without them, 2.6
    # s more here; tests/test_report.py runs them)
    rep = report([out], tmp_path / "report", n=40, steps=2, sections=["training"], progress=False)
    assert any(p.name == "training_curves.pdf" for p in rep.figures)
    from robustviz import figures
    fig = figures.plot_training_curves({"at": runs.read_metrics(out)})
    assert any("R-DIV" in ax.get_ylabel() for ax in fig.axes)   # the R-DIV-per-epoch panel
    with pytest.raises(ValueError, match="diagnostics"):
        TrainConfig(diagnostics={"rdiv_evry": 1})


def test_cli_errors_are_clear(tmp_path, capsys):
    from robustviz.cli import main

    assert main(["train", "--dataset", "digits", "--epochs", "1"]) == 2
    assert "--out is required" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {learning_rate: 0.1}\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "learning_rate" in capsys.readouterr().err


# ----------------------------------------------------------------------------- run integrity
def test_resume_refuses_a_changed_run_and_keeps_its_provenance(digits, tmp_path):
    """Resuming with another defense, other attack steps or another data seed is refused,
    naming the differing keys, and config.json keeps what the run was trained with."""
    train, _ = digits
    run_dir = tmp_path / "run"
    pgd = {"name": "pgd_at", "eps": 0.1, "step_size": 0.05, "steps": 1}
    opts = dict(epochs=1, lr=0.05, batch_size=100, val_attack=None, progress=False)
    Trainer(defense=pgd, **opts).fit(tiny_model(train), train, run_dir=run_dir, meta={"data": {"seed": 0}})
    before = (run_dir / runs.CONFIG).read_bytes()
    weights_before = weights(run_dir)
    cases = [({**opts, "defense": {"name": "trades", "eps": 0.1, "step_size": 0.05, "steps": 1}}, {},
              "defense.name"),
             ({**opts, "defense": {**pgd, "steps": 2}}, {}, "defense.steps"),
             ({**opts, "defense": pgd}, {"data": {"seed": 1}}, "data.seed")]
    for kw, meta, key in cases:
        with pytest.raises(ValueError, match=rf"cannot resume .*{key}") as info:
            Trainer(**{**kw, "epochs": 2}).fit(tiny_model(train), train, resume=run_dir,
                                               meta={"data": {"seed": 0}, **meta})
        listed = str(info.value).split("differing key(s): ")[1].split(";")[0].split(", ")
        assert key in listed and "train.epochs" not in listed   # the allowed change is not listed
        assert (run_dir / runs.CONFIG).read_bytes() == before
        assert all(torch.equal(v, weights(run_dir)[k]) for k, v in weights_before.items())
    # epochs may change (continue training): recorded, the rest stays as it was
    Trainer(defense=pgd, **{**opts, "epochs": 2}).fit(tiny_model(train), train, resume=run_dir,
                                                      meta={"data": {"seed": 0}})
    cfg = runs.load_config(run_dir)
    old = json.loads(before)
    assert cfg["train"]["epochs"] == 2 and cfg["defense"] == old["defense"] and cfg["data"] == old["data"]


def test_resume_of_a_run_written_before_eval_eps_was_stored(digits, tmp_path):
    """Backward compatibility: a config.json without the eval section still resumes, loads
    and evaluates at its training eps."""
    train, test = digits
    run_dir = tmp_path / "old"
    spec = {"name": "pgd_at", "eps": 0.2, "step_size": 0.1, "steps": 1}
    opts = dict(defense=spec, lr=0.05, batch_size=100, val_attack=None, progress=False)
    Trainer(epochs=1, **opts).fit(tiny_model(train), train, run_dir=run_dir)
    cfg = runs.load_config(run_dir)
    assert cfg["eval"] == {"eps": 0.2}                     # stored where it is read
    del cfg["eval"]                                        # as the previous code wrote it
    runs.atomic_write_text(run_dir / runs.CONFIG, json.dumps(cfg))
    assert runs.eval_eps(cfg) == (0.2, "the run's training eps (config.json defense.eps)")
    Trainer(epochs=2, **opts).fit(tiny_model(train), train, resume=run_dir)
    assert runs.load_config(run_dir)["eval"] == {"eps": 0.2}
    assert len(runs.read_metrics(run_dir, kind="epoch")) == 2


LOCK_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from robustviz import runs
    with runs.RunLock(sys.argv[1]):
        Path(sys.argv[2]).write_text("locked")
        while not Path(sys.argv[3]).exists():
            time.sleep(0.05)
""")


def test_second_process_on_a_run_directory_is_refused_before_writing(digits, tmp_path):
    """While one process holds a run directory, a second trainer (another defense) is
    refused before it writes anything: config.json cannot name one defense while the
    weights are the other's."""
    train, _ = digits
    run_dir, ready, done = tmp_path / "run", tmp_path / "ready", tmp_path / "done"
    run_dir.mkdir()
    (run_dir / runs.CONFIG).write_text('{"model": {"name": "tinycnn"}, "defense": {"name": "nat"}}')
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run_dir), str(ready), str(done)],
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.time() + 120
        while not ready.exists():
            assert proc.poll() is None and time.time() < deadline
            time.sleep(0.05)
        with pytest.raises(runs.RunLockedError, match=rf"pid {proc.pid} on host"):
            Trainer(defense={"name": "pgd_at", "eps": 0.1, "steps": 1}, epochs=1, val_attack=None,
                    progress=False).fit(tiny_model(train), train, run_dir=run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == [runs.CONFIG, runs.LOCK]
        assert json.loads((run_dir / runs.CONFIG).read_text())["defense"] == {"name": "nat"}
    finally:
        done.write_text("")
        proc.wait(60)
    assert not (run_dir / runs.LOCK).exists()


def test_cli_rejected_train_command_leaves_the_run_untouched(tmp_path, capsys):
    """A train command refused for bad options or for an existing run writes nothing:
    the finished run's train_config.yaml is not overwritten."""
    from robustviz.cli import main

    out = tmp_path / "run"
    base = ["train", "--dataset", "digits", "--defense", "nat", "--n-train", "200", "--epochs", "1",
            "--val-size", "50", "--n-test", "60", "--device", "cpu", "--no-progress", "--out", str(out)]
    assert main(base) == 0
    capsys.readouterr()
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    for extra, match in ((["--epochs", "3"], "resume"), (["--lr", "-1"], "lr"),
                         (["--epochs", "0"], "epochs"), (["--defense", "trades", "--resume"], "defense.name")):
        assert main(base + extra) == 2
        assert match in capsys.readouterr().err
        assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    fresh = tmp_path / "fresh"
    assert main([*base[:-1], str(fresh), "--lr", "-1"]) == 2
    assert not fresh.exists()                          # nothing created for a refused command


def test_eval_eps_is_stored_and_evaluate_uses_the_training_eps(digits, tmp_path, capsys):
    """A run trained at eps 0.2 is evaluated at 0.2 (not 0.1), and the command says why."""
    from robustviz.cli import main

    train, _ = digits
    run_dir = tmp_path / "at02"
    Trainer(defense={"name": "pgd_at", "eps": 0.2, "step_size": 0.1, "steps": 1}, epochs=1, lr=0.05,
            batch_size=100, val_attack=None, progress=False).fit(tiny_model(train), train, run_dir=run_dir)
    assert main(["evaluate", str(run_dir), "--attack", "fgsm", "--n", "50", "--topk", "1",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "eps 0.2: the run's evaluation eps (config.json eval.eps)" in printed
    assert runs.read_metrics(run_dir, kind="evaluation")[-1]["eps"] == 0.2
    # --eps wins, and says so
    assert main(["evaluate", str(run_dir), "--attack", "fgsm", "--n", "50", "--topk", "1", "--eps", "0.05",
                 "--no-progress", "--no-save"]) == 0
    assert "eps 0.05: --eps" in capsys.readouterr().out


def test_cli_default_eps_is_the_datasets(tmp_path, capsys):
    """Without --eps the train command trains, validates and evaluates at the data set's
    default radius (the report's), not the defense's CIFAR 8/255, and prints why."""
    from robustviz.cli import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--defense", "pgd_at", "--steps", "1", "--step-size", "0.05",
                 "--n-train", "200", "--epochs", "1", "--val-size", "50", "--n-test", "60", "--device", "cpu",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    cfg = runs.load_config(out)
    assert cfg["defense"]["eps"] == runs.DEFAULT_EPS["digits"] == 0.1
    assert cfg["eval"]["eps"] == 0.1 and runs.read_metrics(out, kind="final")[-1]["eps"] == 0.1
    assert "eps 0.1: no eps given, the default for digits" in printed


def test_bf16_is_fast_reads_the_cpu_flags_and_the_kernels_pytorch_may_use(monkeypatch):
    """CPU bf16 counts as fast only with a native bf16 flag AND kernels allowed to use it:
    ATEN_CPU_CAPABILITY=avx2 or oneDNN held below AVX512_CORE_BF16 emulate bf16 (slow)."""
    import builtins
    import io

    from robustviz import _utils

    real_open = builtins.open

    def cpuinfo(flags):
        def fake(path, *a, **k):
            if str(path) == "/proc/cpuinfo":
                return io.StringIO(f"model name\t: test\nflags\t\t: {flags}\n")
            return real_open(path, *a, **k)
        return fake

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(builtins, "open", cpuinfo("fpu avx2 avx512f"))
    assert _utils.bf16_is_fast("cpu") is False                       # AVX512 without bf16
    monkeypatch.setattr(builtins, "open", cpuinfo("fpu avx2 avx512f avx512_bf16"))
    assert _utils.bf16_is_fast("cpu") is True
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert _utils.bf16_is_fast("cpu") is False                       # ATEN_CPU_CAPABILITY=avx2
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert _utils.bf16_is_fast("cpu") is False                       # oneDNN held at AVX2
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert _utils.bf16_is_fast("cpu") is True
    monkeypatch.setattr(builtins, "open", cpuinfo("fpu avx2"))
    assert _utils.bf16_is_fast("cpu") is False                       # an AVX2 CPU


def test_bf16_auto_follows_the_hardware(monkeypatch):
    """bf16="auto" (the default) is on only where bf16 is native (CUDA, AVX512-BF16/AMX CPUs):
    emulated bf16 on an AVX2 CPU is several times slower than fp32."""
    import robustviz as rv
    from robustviz import _utils

    assert rv.train.Trainer().bf16 == "auto"
    data = rv.data.load("digits", "train", n=64, seed=0)
    for fast in (False, True):
        monkeypatch.setattr(_utils, "bf16_is_fast", lambda device, fast=fast: fast)
        model = rv.models.build("tinycnn", num_classes=10, in_channels=1, input_size=(8, 8),
                                mean=data.mean, std=data.std)
        tr = rv.train.Trainer(epochs=1, batch_size=32, val_attack=None, progress=False).fit(model, data)
        assert tr.bf16_ is fast
    assert rv.train.Trainer(bf16=False).use_bf16("cpu") is False
    with pytest.raises(TypeError, match="'auto'"):
        rv.train.Trainer(bf16="yes", epochs=1, progress=False).fit(model, data)
