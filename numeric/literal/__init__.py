"""Literal drivers: the paper's forms as printed (corrected where disproved), evaluated
term by term for verification and exploration: :mod:`~numeric.literal.feedforward`
(B.1, B.3 and Section 3), :mod:`~numeric.literal.convolution` (B.2.1) and
:mod:`~numeric.literal.recurrent` (B.2.2)."""
