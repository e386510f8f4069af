"""Using a trained network: predictions and graph embeddings z_G in eval mode, in one pass
(:func:`infer`), the last-layer gradient features some selections pick on (:func:`infer_gradients`),
and the MAE over the labels present (:func:`mae`)."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.data.graphs import GraphSet
from pipeline.learn.runtime import autocast, batches, evaluating
from pipeline.model.asgn import ASGNModel


@torch.no_grad()
def infer(
    model: ASGNModel, graphs: GraphSet, index: np.ndarray, batch_size: int = 256, amp: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions [n, T] (real units) and graph embeddings z_G [n, H] of the molecules at ``index``."""
    device = graphs.device
    preds, embs = [], []
    with evaluating(model):
        for idx in batches(torch.as_tensor(np.asarray(index), dtype=torch.long, device=device), batch_size):
            with autocast(device, amp):
                out = model(graphs.batch(idx))
            preds.append(out.pred.float())
            embs.append(out.graph.float())
    if not preds:
        return np.zeros((0, len(model.config.targets)), np.float32), np.zeros(
            (0, model.config.hidden), np.float32
        )
    return torch.cat(preds).cpu().numpy(), torch.cat(embs).cpu().numpy()


def infer_nodes(
    model: ASGNModel, graphs: GraphSet, index: np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """[a, H] float32 node embeddings h and [a] int64 atomic numbers of the atoms of the molecules at
    ``index``, molecule after molecule in that order (as ``graphs.batch(index)`` holds them); no
    autocast: they are features."""
    index = torch.as_tensor(np.asarray(index), dtype=torch.long, device=graphs.device)
    nodes, z = [], []
    with evaluating(model), torch.no_grad():
        for idx in batches(index, batch_size):
            b = graphs.batch(idx)
            nodes.append(model(b).node.float().cpu())
            z.append(b.z.cpu())
    if not nodes:
        return np.zeros((0, model.config.hidden), np.float32), np.zeros(0, np.int64)
    return torch.cat(nodes).numpy(), torch.cat(z).numpy().astype(np.int64)


def infer_gradients(
    model: ASGNModel, graphs: GraphSet, index: np.ndarray, batch_size: int = 256
) -> np.ndarray:
    """[n, T * (F + 1)] the last-layer gradient features (:meth:`ASGNModel.last_layer_gradients`)
    of the molecules at ``index``, in float32 (no autocast: they are selection features)."""
    index = torch.as_tensor(np.asarray(index), dtype=torch.long, device=graphs.device)
    with evaluating(model):
        out = [model.last_layer_gradients(graphs.batch(idx)).cpu() for idx in batches(index, batch_size)]
    width = len(model.config.targets) * (model.property_head.last.in_features + 1)
    return torch.cat(out).numpy() if out else np.zeros((0, width), np.float32)


def mae(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean absolute error per target over the labels present ([T]; NaN where a target has none)."""
    err = np.abs(pred - y)
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.where(np.isnan(y), np.nan, err), axis=0)
