"""Interactive widgets for teaching and exploring (ipywidgets + plotly).

::

    import robustviz as rv
    test = rv.data.load("fashion-mnist", "test", n=1000)
    ex = rv.widgets.LatentExplorer({"NAT": "nat", "PGD-AT": "pgd_at"}, test)  # zoo names
    ex                      # in Jupyter: controls, the map, the R-DIV read-out
    ex.eps = 0.2            # or drive it from code: the view updates
    ex.view.rdiv, ex.latency_s

    AttackPlayground(model, test)          # one image: perturbation, adversarial, top-5
    TrainingReplay("runs/at")              # RDivCallback(..., keep_features=True) runs
    InversionExplorer({"NAT": "nat", "PGD-AT": "pgd_at"}, test.x[:8])  # feature inversion

Each widget is a plain object whose controls are attributes: tests and scripts set them
and read the results without a front end; the ipywidgets controls (``.ui``) follow the
state both ways. Work that does not change with a control is cached.
"""
from robustviz.widgets._inversion import InversionExplorer
from robustviz.widgets._latent import LatentExplorer, LatentView
from robustviz.widgets._playground import AttackPlayground, AttackView
from robustviz.widgets._replay import ReplayFrame, TrainingReplay, align

__all__ = ["LatentExplorer", "LatentView", "AttackPlayground", "AttackView",
           "TrainingReplay", "ReplayFrame", "align", "InversionExplorer"]
