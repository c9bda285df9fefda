"""`--init-from RUN_DIR`: start a network from the weights of a finished run.

The run's network (the source) is rebuilt from its config.json and final weights
(`segcore.training.load_run`). The units copied are the innermost layers that own
weights: a nested model (a sub-model of a functional model, the functional U-Net
inside `OverlapTileUNet`, the DeepLab ResNet behind its input conversion) is looked
into, never copied as a whole. Each such layer has a path: the names of the
sub-models it is in and its own, joined by "/" ("logits", "unet/down1_conv1"); the
top-level model's name is not part of it, so runs of differently named networks
(FCN-32s and FCN-16s) match.

A layer of the new network takes the source layer

1. at the same path, or else
2. of the same name, when that name belongs to one layer with weights only in each
   network (the same layer inside differently named sub-models, or inside a
   sub-model in one network and at the top in the other);

never by position, so a layer never receives another layer's weights, and two
layers of one name in different sub-models are told apart by their paths. It is
copied when its weights (trainable and not: a batch norm's moving mean and
variance go with its gamma and beta) have the shapes of the source layer's, one
for one. Every other layer keeps its fresh initialisation, with the reason
recorded: "not in the source", or the first shape that differs ("shape
[1,1,256,21] in the source, [1,1,256,11] here" for the logits of a 21-class run
in an 11-class network). Layer types are not compared: a `PatchConv2D` takes a
`Conv2D`'s kernel, as it computes the same function.

Staged FCN training is one use: FCN-16s starts from an FCN-32s run, whose VGG layers
and `score_fr` carry over while the new skip layers keep their zero or bilinear
initialisation. Fine-tuning a 21-class VOC model on an 11-class dataset is another:
everything but the logits is copied.

`init_from_run` logs the table of every layer with weights (copied or fresh, why,
parameter count) with totals at INFO and returns it for config.json; a source of
which no layer is copied is a ConfigError naming the run directory.
"""

import collections
import dataclasses
import logging

import keras

from segcore.errors import ConfigError

log = logging.getLogger("segcore.warm_start")


@dataclasses.dataclass(frozen=True)
class LayerInit:
    """How one layer with weights was initialised."""

    path: str          # "logits", or "unet/down1_conv1" inside a sub-model
    copied: bool
    reason: str
    parameters: int    # trainable and non-trainable


def weight_layers(model):
    """[(path, layer)] of the innermost layers of `model` that own weights, depth
    first (a layer shared by several sub-models once, at its first path)."""
    found, seen = [], set()

    def visit(parent, prefix):
        for layer in parent.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = prefix + layer.name
            if isinstance(layer, keras.Model):
                visit(layer, path + "/")
            elif layer.weights:
                found.append((path, layer))

    visit(model, "")
    return found


def _shape(array):
    return "[" + ",".join(str(n) for n in array.shape) + "]"


def _difference(theirs, mine):
    """Why weights `theirs` (source) do not fit `mine`, or None when they do."""
    if len(theirs) != len(mine):
        return f"{len(theirs)} weights in the source, {len(mine)} here"
    for a, b in zip(theirs, mine):
        if a.shape != b.shape:
            return f"shape {_shape(a)} in the source, {_shape(b)} here"
    return None


def copy_matching_layers(network, source):
    """Copy into `network` the weights of the layers of `source` that match (module
    docstring); return a `LayerInit` for every layer of `network` with weights."""
    targets, sources = weight_layers(network), weight_layers(source)
    by_path = dict(sources)
    source_paths = collections.defaultdict(list)
    for path, layer in sources:
        source_paths[layer.name].append(path)
    target_count = collections.Counter(layer.name for _, layer in targets)
    records = []
    for path, layer in targets:
        mine = layer.get_weights()
        parameters = int(sum(w.size for w in mine))
        named = source_paths.get(layer.name, [])
        if path in by_path:
            source_path = path
        elif len(named) == 1 and target_count[layer.name] == 1:
            source_path = named[0]
        else:
            reason = "not in the source" if not named else (
                f"not in the source at this path (the source has {layer.name!r} at "
                f"{', '.join(named)}; a name used more than once is matched by path)")
            records.append(LayerInit(path, False, reason, parameters))
            continue
        where = "" if source_path == path else f" (at {source_path} in the source)"
        theirs = by_path[source_path].get_weights()
        difference = _difference(theirs, mine)
        if difference is not None:
            records.append(LayerInit(path, False, difference + where, parameters))
            continue
        layer.set_weights(theirs)
        records.append(LayerInit(path, True, "same name and shapes" + where, parameters))
    return records


def totals(records):
    """{"copied_layers", "copied_parameters", "fresh_layers", "fresh_parameters"}."""
    result = {}
    for kind, copied in (("copied", True), ("fresh", False)):
        chosen = [r for r in records if r.copied == copied]
        result[f"{kind}_layers"] = len(chosen)
        result[f"{kind}_parameters"] = sum(r.parameters for r in chosen)
    return result


def format_table(records):
    """The records as a text table (layer, init, parameters, reason) with totals."""
    width = max([len("layer")] + [len(r.path) for r in records])
    lines = [f"{'layer':<{width}}  {'init':<6}  {'parameters':>10}  reason"]
    lines += [f"{r.path:<{width}}  {'copied' if r.copied else 'fresh':<6}  "
              f"{r.parameters:>10}  {r.reason}" for r in records]
    sums = totals(records)
    lines += [f"{kind}: {_count(sums[kind + '_layers'], 'layer')}, "
              f"{_count(sums[kind + '_parameters'], 'parameter')}" for kind in ("copied", "fresh")]
    return "\n".join(lines)


def _count(number, noun):
    return f"{number} {noun}{'' if number == 1 else 's'}"


def describe(records):
    """The config.json record ("resolved") of `records`: `init_from_layers` the paths
    of the copied layers (a top-level layer's path is its name), `init_from_fresh_layers`
    {path: reason}, `init_from_table` one row per layer, `init_from_totals`."""
    return {
        "init_from_layers": [r.path for r in records if r.copied],
        "init_from_fresh_layers": {r.path: r.reason for r in records if not r.copied},
        "init_from_table": [{"layer": r.path, "init": "copied" if r.copied else "fresh",
                             "reason": r.reason, "parameters": r.parameters} for r in records],
        "init_from_totals": totals(records),
    }


def init_from_run(network, run_dir):
    """Initialise `network` from the finished run at `run_dir` (module docstring); log
    the table and return its config.json record (`describe`)."""
    from segcore.training import load_run  # segcore.training calls this module

    try:
        source = load_run(run_dir)[2].network
    except ConfigError as error:
        raise ConfigError(f"--init-from {error}") from None
    records = copy_matching_layers(network, source)
    if not any(r.copied for r in records):
        raise ConfigError(f"--init-from {run_dir}: no layer of that network matches this one "
                          "(by name and weight shapes)")
    sums = totals(records)
    log.info("--init-from %s: %s (%s) copied, %s (%s) fresh\n%s", run_dir,
             _count(sums["copied_layers"], "layer"), _count(sums["copied_parameters"], "parameter"),
             _count(sums["fresh_layers"], "layer"), _count(sums["fresh_parameters"], "parameter"),
             format_table(records))
    return describe(records)
