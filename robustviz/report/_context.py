"""The :class:`Context` every section reads: the runs, the test set, the threat model,
and the shared computations (evaluation, features, divergences, maps, eps sweep), each done
once on first use."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

from robustviz._validate import check_choice, check_int, check_positive

# Data sets whose pixels are not 8-bit (scikit-learn's digits has 17 grey levels): their eps
# is shown without the /255 equivalent.
_NOT_8BIT = {"digits"}


def default_eps(config: dict) -> float:
    """The attack radius of a run (:func:`robustviz.runs.eval_eps`): its evaluation eps,
    else its training eps, else the data set's default (:data:`robustviz.runs.DEFAULT_EPS`)."""
    from robustviz.runs import eval_eps

    return eval_eps(config)[0]



class Context:
    """Everything sections share: the runs, the test set, the threat model, and the
    computations (evaluation, features, divergences, maps, eps sweep), each done once on
    first use. Build with :meth:`build`."""

    def __init__(self, runs: dict, test, *, eps: float, steps: int, out: Path, dname: str,
                 n_sweep: int, sweep_steps: int, n_embed: int, n_embed_adv: int,
                 embed_method: str, seed: int, autoattack: str | None = None, seeds: int = 1,
                 selection: str | None = None):
        from robustviz import attacks
        from robustviz.figures import model_styles

        self.runs = runs
        self.test = test
        self.eps = float(eps)
        self.steps = int(steps)
        self.out = Path(out)
        self.dname = dname
        self.n = len(test)
        self.n_sweep = min(int(n_sweep), len(test))
        self.sweep_steps = int(sweep_steps)
        self.n_embed = int(n_embed)
        self.n_embed_adv = int(n_embed_adv)
        self.embed_method = embed_method
        self.seed = int(seed)
        self.class_names = list(test.classes)
        self.styles = model_styles(list(runs))
        # one PGD rule everywhere: the attack core's default step 2.5 * eps / steps
        self.pgd = attacks.PGD(eps=self.eps, steps=self.steps)
        self.pgd_name = f"pgd{self.steps}"
        self.attacks = {"clean": None,
                        self.pgd_name: attacks.Adaptive(attack=self.pgd),
                        "fgsm": attacks.Adaptive(attack=attacks.FGSM(eps=self.eps))}
        self.autoattack = autoattack
        if autoattack is not None:
            self.attacks["autoattack"] = attacks.Adaptive(
                attack=attacks.AutoAttack(eps=self.eps, version=autoattack))
        self.seeds = int(seeds)
        self.selection = selection
        self.adaptive = {nm: attacks.surrogate_of(r.model) is not None for nm, r in runs.items()}
        self._cache: dict = {}
        self._stack: list = []
        self.extra_files: list[Path] = []   # files sections wrote themselves (owned)
        self.timings: dict[str, float] = {}

    @classmethod
    def build(cls, runs, out="report", *, n: int = 1000, eps: float | None = None,
              steps: int = 20, n_sweep: int = 500, sweep_steps: int = 10, n_embed: int = 1000,
              n_embed_adv: int = 100, embed_method: str = "tsne",
              names: Sequence[str] | None = None, seed: int = 0, autoattack: str | None = None,
              seeds: int = 1) -> "Context":
        """Load the runs and their (common) test set; see :func:`report` for the arguments."""
        from robustviz import data, runs as _runs

        if isinstance(runs, (str, os.PathLike)):
            runs = [runs]
        runs = [Path(r) for r in runs]
        if not runs:
            raise ValueError("runs must name at least one run directory")
        for r in runs:
            if not (r / "config.json").is_file():
                raise FileNotFoundError(f"{r} is not a run directory (no config.json)")
        check_int(n, "n", minimum=10)
        check_int(steps, "steps", minimum=1)
        check_int(n_sweep, "n_sweep", minimum=10)
        check_int(seeds, "seeds", minimum=1)
        if autoattack is not None:
            from robustviz.attacks.autoattack import VERSIONS

            check_choice(autoattack, "autoattack", tuple(VERSIONS))
        if names is None:
            names = [r.name for r in runs]
        if len(names) != len(runs) or len(set(names)) != len(names):
            raise ValueError("names must give one distinct name per run")
        loaded = {nm: _runs.load_run(r) for nm, r in zip(names, runs)}
        first = next(iter(loaded.values())).config
        if eps is None:
            eps, why = _runs.eval_eps(first)
            print(f"report: eps {eps:g} ({why}, {runs[0]})")
        eps = float(eps)
        check_positive(eps, "eps", upper=1.0)
        dcfg = dict(first.get("data") or {})
        if "name" not in dcfg:
            raise ValueError(f"{runs[0]}/config.json has no data name; cannot pick a test set")
        for nm, run in loaded.items():
            other = (run.config.get("data") or {}).get("name")
            if other != dcfg["name"]:
                raise ValueError(f"runs use different data sets ({dcfg['name']!r} and {other!r} "
                                 f"in {nm}); a report compares models on one test set")
        size = data.info(dcfg["name"]).sizes["test"]
        test = data.load(dcfg["name"], "test", root=dcfg.get("root"), n=min(n, size), seed=seed)
        from robustviz.models import check_finite_logits

        for r, run in zip(runs, loaded.values()):   # a NaN model scores chance, silently
            check_finite_logits(run.model, test.x, name=str(r))
        return cls(loaded, test, eps=eps, steps=steps, out=Path(out), dname=dcfg["name"],
                   n_sweep=n_sweep, sweep_steps=sweep_steps, n_embed=n_embed,
                   n_embed_adv=n_embed_adv, embed_method=embed_method, seed=seed,
                   autoattack=autoattack, seeds=seeds,
                   selection=(f"class-stratified random subset of the test split (seed {seed})"
                              if n < size else "the whole test split"))

    # ---- conventions
    def eps_text(self, eps: float | None = None) -> str:
        """A radius in the report's one convention: the data's pixel scale, with the /255
        equivalent in brackets where the data is 8-bit (``0.1 (25.5/255)``)."""
        e = self.eps if eps is None else float(eps)
        if self.dname in _NOT_8BIT:
            return f"{e:.4g}"
        return f"{e:.4g} ({e * 255:.3g}/255)"

    @property
    def pgd_label(self) -> str:
        """``PGD-20`` with its step rule and value, for table headers."""
        return (f"PGD-{self.steps} (step 2.5 eps/{self.steps} = "
                f"{self.pgd.effective_step_size:.4g})")

    # ---- shared computations, each done once
    def _once(self, key, make):
        if key not in self._cache:
            kind = key[0] if isinstance(key, tuple) else key
            self._stack.append(0.0)            # seconds spent in nested computations
            t = time.perf_counter()
            try:
                self._cache[key] = make()
            finally:
                total = time.perf_counter() - t
                nested = self._stack.pop()
                # exclusive seconds per kind of computation ("eval", "sweep", "embed", ...)
                self.timings[kind] = self.timings.get(kind, 0.0) + total - nested
                if self._stack:
                    self._stack[-1] += total
        return self._cache[key]

    def evaluation(self, name: str):
        """The table's :class:`~robustviz.evaluate.EvalResult` of run ``name`` (clean,
        PGD, FGSM at ``eps``); the PGD examples are kept for the diagnostics."""
        from robustviz import evaluate

        def make():
            atks = {k: v for k, v in self.attacks.items() if v is not None}
            ev = evaluate.evaluate(self.runs[name].model, self.test, atks, seed=self.seed,
                                   keep_adv=self.pgd_name, seeds=self.seeds,
                                   selection=self.selection, progress=False)
            self._cache[("adv", name)] = ev.adv.pop(self.pgd_name)
            return ev
        return self._once(("eval", name), make)

    def adversarial(self, name: str):
        """The PGD examples of the accuracy table, shape (N, C, H, W)."""
        self.evaluation(name)
        return self._cache[("adv", name)]

    def features(self, name: str):
        from robustviz import diagnostics

        return self._once(("feat", name), lambda: diagnostics.attacked_features(
            self.runs[name].model, self.test, x_adv=self.adversarial(name)))

    def divergence(self, name: str):
        from robustviz import diagnostics

        def make():
            f = self.features(name)
            return diagnostics.divergence(f.z_nat, f.z_adv, f.y, n_boot=200, seed=self.seed)
        return self._once(("div", name), make)

    def pairs(self, name: str):
        from robustviz import diagnostics

        def make():
            f = self.features(name)
            return diagnostics.pair_distances(f.z_nat, f.z_adv, f.y, seed=self.seed)
        return self._once(("pairs", name), make)

    def embedding(self, name: str):
        from robustviz import diagnostics

        def make():
            f = self.features(name)
            k = min(self.n_embed, len(f.y))
            ka = min(self.n_embed_adv, k)
            return diagnostics.embed(f.z_nat[:k], f.z_adv[:ka], f.y[:k], y_adv=f.y[:ka],
                                     probs=f.probs_nat[:k], probs_adv=f.probs_adv[:ka],
                                     method=self.embed_method, seed=self.seed)
        return self._once(("embed", name), make)

    def sweep(self):
        """R-DIV and robust accuracy at eps x {0, 1/4, 1/2, 1, 3/2, 2} (PGD with
        ``sweep_steps`` steps on ``n_sweep`` examples)."""
        from robustviz import attacks, diagnostics

        def make():
            grid = sorted({0.0, self.eps / 4, self.eps / 2, self.eps, 1.5 * self.eps,
                           2 * self.eps})
            grid = [e for e in grid if e <= 1.0]
            atk = attacks.Adaptive(attack=attacks.PGD(eps=self.eps, steps=self.sweep_steps))
            return diagnostics.rdiv_vs_eps({nm: r.model for nm, r in self.runs.items()},
                                           self.test, atk, grid, n=self.n_sweep, n_boot=100,
                                           seed=self.seed)
        return self._once("sweep", make)


