"""Structured pruning of the NeRF MLP: score hidden units, remove the weakest, slice the layers.

The result is a smaller dense `NeRF` of the same class (per-layer widths in `NeRFConfig.hidden_widths`),
so it saves, loads and renders like any float model and runs faster with no sparse kernels.

- `graph`: which layers read which units (`dependency_graph`) and slicing a network (`prune_network`);
- `statistics`: per-unit activation statistics on calibration rays, cached across rules and ratios;
- `importance`: the scoring rules, one strategy object per rule (`IMPORTANCE`);
- `plan`: how many units each layer keeps, and which;
- `repair`: mean fill and least-squares refit of the consumers of a pruned layer;
- `compressor`: `PruneCompressor`, the `prune-*` names and their options (registered on import).
"""

from nerf_eval.compress.prune.compressor import (DEFAULT_REPAIR, GATES, NAMES, SEARCH_RATIOS, PruneCompressor,
                                                 prune_compressor, prune_params)
from nerf_eval.compress.prune.graph import (Consumer, Producer, check_nerf, consumer_columns, dependency_graph,
                                            prune_network)
from nerf_eval.compress.prune.importance import (ACTIVATION_RULES, IMPORTANCE, RULES, WEIGHT_RULES,
                                                 ActivationImportance, Importance, OBSImportance, RandomImportance,
                                                 WeightNormImportance, get_importance, obs_scores, single_thread,
                                                 weight_scores)
from nerf_eval.compress.prune.plan import SCOPES, check_ratio, kept_width, plan_keep
from nerf_eval.compress.prune.repair import REPAIRS, fill_bias, refit_consumer
from nerf_eval.compress.prune.statistics import (ENTROPY_BINS, STATISTICS_CACHE, StatisticsCache, UnitStats,
                                                 cached_calibration_statistics, calibration_statistics,
                                                 record_activations)

__all__ = ["ACTIVATION_RULES", "DEFAULT_REPAIR", "ENTROPY_BINS", "GATES", "IMPORTANCE", "NAMES", "REPAIRS", "RULES",
           "SCOPES", "SEARCH_RATIOS", "STATISTICS_CACHE", "WEIGHT_RULES", "ActivationImportance", "Consumer",
           "Importance", "OBSImportance", "Producer", "PruneCompressor", "RandomImportance", "StatisticsCache",
           "UnitStats", "WeightNormImportance", "cached_calibration_statistics", "calibration_statistics",
           "check_nerf", "check_ratio", "consumer_columns", "dependency_graph", "fill_bias", "get_importance",
           "kept_width", "obs_scores", "plan_keep", "prune_compressor", "prune_network", "prune_params",
           "record_activations", "refit_consumer", "single_thread", "weight_scores"]
