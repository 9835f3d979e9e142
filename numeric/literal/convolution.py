"""Literal drivers of one convolutional layer (Appendix B.2.1, Eqs 44-57).

The layer's derivatives with respect to its inputs and kernels, first and second order,
by the paper's forms: the patch forms with channels (Eqs 46-52, ``.mc``) and the
single-channel conditional forms (Eqs 53-57, printed and corrected), all generated in
:mod:`numeric.kernels.convolution`.  For verification and exploration (NumPy only: the
conditional forms are gathers with masks); training uses :class:`numeric.layers.Conv2D`.

Arrays: inputs ``x`` (batch, C, H, W), kernels ``w`` (O, C, K_h, K_w), outputs ``v``
(batch, O, S, T), patches ``z`` (batch, C, S, T, K_h, K_w), selection ``dzdx``
(S, T, K_h, K_w, H, W).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from numeric.kernels import activations
from numeric.kernels import convolution as cv
from numeric.layers.conv2d import output_size

__all__ = [
    "ConvForward",
    "forward",
    "hessian_ww",
    "hessian_wx",
    "hessian_xx",
    "jacobian_w",
    "jacobian_x",
    "output_size",
    "patches",
    "selection",
    "single_channel",
]


def patches(x, kh: int, kw: int, sigma: int, tau: int):
    """Patches ``z`` of Eq 45 (corrected: ``(x~_t^s)_k^l``) for every channel.

    Parameters
    ----------
    x : ndarray, shape (batch, C, H, W)

    Returns
    -------
    ndarray, shape (batch, C, S, T, K_h, K_w)
    """
    b, c, h, w = x.shape
    s, t = output_size(h, w, kh, kw, sigma, tau)
    flat = x.reshape(b * c, h, w)
    z = cv.eq45_patch_entrywise(cx=flat, sigma=sigma, tau=tau, n_s=s, n_t=t, n_l=kh, n_k=kw)
    return z.reshape(b, c, s, t, kh, kw)


def selection(h: int, w: int, kh: int, kw: int, sigma: int, tau: int, dtype=np.float64):
    """``dz/dx`` of Eq 48 (corrected), shape (S, T, K_h, K_w, H, W)."""
    s, t = output_size(h, w, kh, kw, sigma, tau)
    return cv.eq48_dz_dx_entrywise(
        sigma=sigma, tau=tau, n_s=s, n_t=t, n_m=kh, n_q=kw, n_i=h, n_j=w
    ).astype(dtype)


class ConvForward(NamedTuple):
    """The layer's forward pass: the input ``x``, patches ``z`` (batch, C, S, T, K_h,
    K_w), outputs ``v``, ``A'`` and ``A''`` (batch, O, S, T), the selection tensor
    ``dzdx`` (Eq 48) and the strides."""

    x: np.ndarray
    z: np.ndarray
    v: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    dzdx: np.ndarray
    sigma: int
    tau: int


def forward(w, x, sigma: int = 1, tau: int = 1, activation: str = "relu") -> ConvForward:
    """Eq 46 with channels: ``v = A(z . w)``.

    Parameters
    ----------
    w : ndarray, shape (O, C, K_h, K_w)
    x : ndarray, shape (batch, C, H, W)
    """
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 4 or w.ndim != 4 or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x must be (batch, C, H, W) and w (O, C, K_h, K_w) with the same C; got "
            f"{x.shape} and {w.shape}"
        )
    act = activations.ACTIVATIONS[activation]
    z = patches(x, w.shape[2], w.shape[3], sigma, tau)
    pre = cv.eq46mc_preactivation(mz=z, mw=w)
    v, a1, a2 = act(pre)
    dzdx = selection(x.shape[2], x.shape[3], w.shape[2], w.shape[3], sigma, tau, x.dtype)
    return ConvForward(x, z, v, a1, a2, dzdx, sigma, tau)


def jacobian_x(fwd: ConvForward, w):
    """``dv/dx`` (Eq 47 with channels): (batch, O, S, T, C, H, W)."""
    return cv.eq47mc_dv_dx(ma1=fwd.a1, mw=w, cdz=fwd.dzdx)


def jacobian_w(fwd: ConvForward):
    """``dv/dw`` (Eq 49 with channels): (batch, O, S, T, O, C, K_h, K_w)."""
    return cv.eq49mc_dv_dw(ma1=fwd.a1, mz=fwd.z)


def hessian_xx(fwd: ConvForward, w):
    """``d2v/dx dx`` (Eq 50 with channels): (batch, O, S, T, C, H, W, C, H, W)."""
    return cv.eq50mc_d2v_dxdx(ma2=fwd.a2, mw=w, cdz=fwd.dzdx)


def hessian_wx(fwd: ConvForward, w):
    """``d2v/dw dx`` (Eq 51 with channels): (batch, O, S, T, O, C, K_h, K_w, C, H, W)."""
    return cv.eq51mc_d2v_dwdx(
        ma1=fwd.a1,
        ma2=fwd.a2,
        mz=fwd.z,
        mw=w,
        cdz=fwd.dzdx,
        ceye=np.eye(w.shape[1], dtype=fwd.z.dtype),
    )


def hessian_ww(fwd: ConvForward):
    """``d2v/dw dw`` (Eq 52 with channels): (batch, O, S, T, O, C, K_h, K_w, O, C, K_h, K_w)."""
    return cv.eq52mc_d2v_dwdw(ma2=fwd.a2, mz=fwd.z)


def single_channel(fwd: ConvForward, w, which: str = "corrected"):
    """The single-channel derivatives by the paper's own forms (channel 0 of ``x``, ``w``).

    ``which="corrected"``: the patch forms (Eqs 47 corrected, 49-52) and the conditional
    forms (Eqs 53-57, corrected); ``which="printed"``: the conditional forms with the
    printed conditions (Eqs 54, 56, 57; NaN where they read outside the kernel).

    Returns
    -------
    dict
        ``equation -> array`` with axes (batch, S, T, ...) as in ``derive``.
    """
    a1, a2, z, w0 = fwd.a1[:, 0], fwd.a2[:, 0], fwd.z[:, 0], w[0, 0]
    s, t, kh, kw = z.shape[1:]
    h, wd = fwd.dzdx.shape[-2:]
    x0 = fwd.x[:, 0]
    sizes = dict(sigma=fwd.sigma, tau=fwd.tau)
    if which == "printed":
        return {
            "54": cv.eq54_dv_dx_entrywise_printed(
                ca1=a1, cw=w0, n_s=s, n_t=t, n_i=h, n_j=wd, **sizes
            ),
            "56": cv.eq56_d2v_dwdx_entrywise_printed(
                ca1=a1, ca2=a2, cw=w0, cx=x0, n_s=s, n_t=t, n_p=kh, n_q=kw, n_i=h, n_j=wd, **sizes
            ),
            "57": cv.eq57_d2v_dxdx_entrywise_printed(
                ca2=a2, cw=w0, n_s=s, n_t=t, n_p=h, n_q=wd, n_i=h, n_j=wd, **sizes
            ),
        }
    return {
        "47": cv.eq47_dv_dx(ca1=a1, cw=w0, cdz=fwd.dzdx),
        "49": cv.eq49_dv_dw(ca1=a1, cz=z),
        "50": cv.eq50_d2v_dxdx(ca2=a2, cw=w0, cdz=fwd.dzdx),
        "51": cv.eq51_d2v_dwdx(ca1=a1, ca2=a2, cz=z, cw=w0, cdz=fwd.dzdx),
        "52": cv.eq52_d2v_dwdw(ca2=a2, cz=z),
        "53": cv.eq53_dv_dw_entrywise(ca1=a1, cx=x0, n_s=s, n_t=t, n_p=kh, n_q=kw, **sizes),
        "54": cv.eq54_dv_dx_entrywise(ca1=a1, cw=w0, n_s=s, n_t=t, n_i=h, n_j=wd, **sizes),
        "55": cv.eq55_d2v_dwdw_entrywise(
            ca2=a2, cx=x0, n_s=s, n_t=t, n_p=kh, n_q=kw, n_a=kh, n_b=kw, **sizes
        ),
        "56": cv.eq56_d2v_dwdx_entrywise(
            ca1=a1, ca2=a2, cw=w0, cx=x0, n_s=s, n_t=t, n_p=kh, n_q=kw, n_i=h, n_j=wd, **sizes
        ),
        "57": cv.eq57_d2v_dxdx_entrywise(
            ca2=a2, cw=w0, n_s=s, n_t=t, n_p=h, n_q=wd, n_i=h, n_j=wd, **sizes
        ),
    }
