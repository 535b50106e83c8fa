"""The radius a run is evaluated at by default (:func:`eval_eps`), and the per-data-set
defaults of :data:`DEFAULT_EPS`: the one table the CLI, the trainer and the report use."""
from __future__ import annotations


#: Linf radius of each data set when a run records none: MNIST 0.3 (Madry et al., ICLR 2018);
#: this project's teaching radius 0.1 for Fashion-MNIST and digits; 8/255 for colour images.
DEFAULT_EPS: dict[str, float] = {"digits": 0.1, "fashion-mnist": 0.1, "mnist": 0.3, "cifar10": 8 / 255,
                                 "cifar100": 8 / 255, "svhn": 8 / 255, "stl10": 8 / 255,
                                 "tiny-imagenet": 8 / 255}


def default_eps(dataset: str | None, *, in_channels: int | None = None) -> float:
    """The default Linf radius of a data set (:data:`DEFAULT_EPS`); for an unknown data
    set 0.1 for one-channel and 8/255 for colour images."""
    if dataset in DEFAULT_EPS:
        return float(DEFAULT_EPS[dataset])
    return 0.1 if in_channels == 1 else 8 / 255


def _valid_eps(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < float(value) <= 1)


def eval_eps(config: dict, dataset: str | None = None) -> tuple[float, str]:
    """The radius a run is evaluated at by default, and why.

    In order: the evaluation radius recorded in ``config.json`` (``eval.eps``, written by
    the trainer and the train command); the ``eval.eps`` of the saved train command config
    (runs written before that); the trainer's ``eps`` option (``train.eps``, the radius it
    validated at); the training attack's radius (``defense.eps``); the data set's default
    (:data:`DEFAULT_EPS`).

    Parameters
    ----------
    config : dict
        A run's ``config.json`` (:func:`robustviz.runs.load_config`).
    dataset : str, optional
        Data set name for the default when the config names none.

    Returns
    -------
    (float, str)
        The radius and a short reason, e.g. ``(0.2, "the run's training eps (config.json
        defense.eps)")``.
    """
    if not isinstance(config, dict):
        raise TypeError(f"config must be a run's config dict, got {type(config).__name__}")

    def get(*keys):
        d = config
        for k in keys:
            if not isinstance(d, dict):
                return None
            d = d.get(k)
        return d

    for keys, what in ((("eval", "eps"), "the run's evaluation eps"),
                       (("train_config", "eval", "eps"), "the run's evaluation eps"),
                       (("train", "eps"), "the run's training eps"),
                       (("defense", "eps"), "the run's training eps")):
        value = get(*keys)
        if value is not None:
            if not _valid_eps(value):
                raise ValueError(f"config.json {'.'.join(keys)} = {value!r} is not a radius in (0, 1]")
            return float(value), f"{what} (config.json {'.'.join(keys)})"
    name = dataset if dataset is not None else get("data", "name")
    channels = get("model", "in_channels")
    eps = default_eps(name, in_channels=channels if isinstance(channels, int) else None)
    if name in DEFAULT_EPS:
        return eps, f"no eps recorded in the run: the default for {name}"
    return eps, (f"no eps recorded in the run and no default for data set {name!r}: "
                 f"{'0.1 for grey' if eps == 0.1 else '8/255 for colour'} images")
