"""The pooling zoo against independent float64 window loops, limits, sampling statistics, gradients."""
import itertools
import math
import random

import pytest
import torch
import torch.nn.functional as F

from vidpool import ops
from vidpool.ops import build_pool, list_pools

from . import brute

# (dim, input shape, kernel, stride, padding, ceil_mode): padding and ceil_mode overhang included
GEOMS = [
    (1, (2, 3, 11), (3,), (2,), (1,), True),
    (2, (2, 3, 7, 9), (3, 2), (2, 2), (1, 0), True),
    (3, (1, 3, 5, 6, 7), (3, 2, 3), (2, 2, 2), (1, 1, 0), True),
    (3, (2, 2, 4, 5, 6), (2, 2, 2), (2, 2, 2), (0, 0, 0), False),
]
GEOM_IDS = ["1d", "2d", "3d-pad-ceil", "3d-k2"]


def _check(module, x, geom, per_window, tol=1e-10):
    dim, shape, k, s, p, ceil = geom
    module = module.double().eval()
    expected = brute.pool_windows(x, k, s, p, ceil, per_window)
    torch.testing.assert_close(module(x), expected, rtol=tol, atol=tol)


def _module(name, geom, **kw):
    dim, shape, k, s, p, ceil = geom
    return build_pool(name, dim, k, s, p, ceil, channels=shape[1], **kw)


@pytest.fixture(params=GEOMS, ids=GEOM_IDS)
def geom(request):
    return request.param


@pytest.fixture
def x(geom):
    return torch.randn(geom[1], dtype=torch.float64) * 2


def test_sum(geom, x):
    _check(_module("sum", geom), x, geom, lambda v, slots, c: v.sum())


def test_lp_fixed_p(geom, x):
    _check(_module("lp", geom, p=3.0), x, geom, lambda v, slots, c: (v.abs() ** 3).sum() ** (1 / 3))


def test_trainable_lp(geom, x):
    m = _module("trainable_lp", geom).double()
    p = torch.linspace(1.0, 4.0, geom[1][1], dtype=torch.float64)
    with torch.no_grad():
        m.p.copy_(p)
    _check(m, x, geom, lambda v, slots, c: (v.abs() ** p[c]).sum() ** (1 / p[c]))


def test_mixed_eval_is_the_average_of_max_and_mean(geom, x):
    _check(_module("mixed", geom), x, geom, lambda v, slots, c: 0.5 * v.max() + 0.5 * v.mean())


def test_gated(geom, x):
    m = _module("gated", geom)
    with torch.no_grad():
        m.mask.normal_()
    w = m.mask.detach().double()[0]
    _check(m, x, geom, lambda v, slots, c: (lambda g: g * v.max() + (1 - g) * v.mean())(
        torch.sigmoid((w[slots] * v).sum())))


def test_gated_per_channel(geom, x):
    m = _module("gated", geom, per_channel=True)
    with torch.no_grad():
        m.mask.normal_()
    w = m.mask.detach().double()
    _check(m, x, geom, lambda v, slots, c: (lambda g: g * v.max() + (1 - g) * v.mean())(
        torch.sigmoid((w[c][slots] * v).sum())))


def test_stochastic_eval(geom, x):
    def expected(v, slots, c):
        a = v.clamp(min=0)
        return (a * a).sum() / a.sum() if a.sum() > 0 else a.sum() * 0
    _check(_module("stochastic", geom), x, geom, expected)


def test_s3pool_eval_is_max_pooling(geom, x):
    _check(_module("s3pool", geom), x, geom, lambda v, slots, c: v.max())


def test_lip(geom, x):
    m = _module("lip", geom)
    with torch.no_grad():
        m.logit.weight.normal_()
        m.logit.bias.normal_()
    C = geom[1][1]
    W = m.logit.weight.detach().double().view(C, C)
    b = m.logit.bias.detach().double()
    logits = torch.einsum("oc,nc...->no...", W, x) + b.view((1, C) + (1,) * geom[0])
    xs, ls = [], []  # window cells of x and of the logits, from two loops over the same windows
    shape = brute.pool_windows(x, *geom[2:], lambda v, s, c: xs.append(v) or v.sum()).shape
    brute.pool_windows(logits, *geom[2:], lambda v, s, c: ls.append(v) or v.sum())
    expected = torch.stack([(torch.softmax(lv, 0) * xv).sum() for xv, lv in zip(xs, ls)]).view(shape)
    torch.testing.assert_close(m.double().eval()(x), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("variant", ["lite", "full"])
@pytest.mark.parametrize("reward", ["sym", "asym"])
def test_dpp(geom, x, variant, reward):
    m = _module(f"dpp_{variant}_{reward}", geom).double()
    C = geom[1][1]
    alpha = torch.rand(C, dtype=torch.float64) + 0.1
    lam = torch.rand(C, dtype=torch.float64) * 2 + 0.1
    with torch.no_grad():
        m.alpha.copy_(alpha)
        m.lam.copy_(lam)
        if variant == "full":
            m.filter.uniform_(0.2, 2.0)
    f = m.filter.detach().double() if variant == "full" else None

    def expected(v, slots, c):
        weights = f[c][slots] if f is not None else torch.ones_like(v)
        smooth = (weights * v).sum() / weights.sum()
        d = v - smooth
        if reward == "asym":
            d = d.clamp(min=0)
        w = alpha[c] + torch.sqrt(d * d + 1e-6) ** lam[c]
        return (w * v).sum() / w.sum()
    _check(m, x, geom, expected)


def test_softpool_in_the_zoo(geom, x):
    dim, shape, k, s, p, ceil = geom
    _check(_module("softpool", geom), x, geom, lambda v, slots, c: (torch.softmax(v, 0) * v).sum())


# limiting cases of the Lp definition (p = 1: sum; p -> infinity: max)
def test_lp_limits(geom):
    x = torch.rand(geom[1], dtype=torch.float64) + 0.1  # non-negative: Lp(p=1) is the sum
    torch.testing.assert_close(_module("lp", geom, p=1.0).double()(x), _module("sum", geom).double()(x))
    dim, shape, k, s, p, ceil = geom
    big = _module("lp", geom, p=400.0).double()(x)
    torch.testing.assert_close(big, brute.pool_windows(x, k, s, p, ceil, lambda v, sl, c: v.max()), rtol=2e-2, atol=0)


def test_dpp_lambda_zero_is_average_and_mixed_alpha_one_is_max(geom, x):
    dim, shape, k, s, p, ceil = geom
    m = _module("dpp_full_asym", geom, lambda_init=0.0).double()
    with torch.no_grad():
        m.filter.uniform_(0.5, 2)
    mean = brute.pool_windows(x, k, s, p, ceil, lambda v, sl, c: v.mean())
    torch.testing.assert_close(m(x), mean)
    mixed = _module("mixed", geom, alpha=1.0).double().train()
    torch.testing.assert_close(mixed(x), F.max_pool3d(x, k, s, p, ceil_mode=ceil) if dim == 3 else
                               brute.pool_windows(x, k, s, p, ceil, lambda v, sl, c: v.max()))


def test_lip_starts_as_softpool(geom, x):
    dim, shape, k, s, p, ceil = geom
    torch.testing.assert_close(_module("lip", geom).double()(x), brute.soft_pool(x, k, s, p, ceil))


# random methods: statistics in train(), determinism in eval()
def test_stochastic_train_frequencies_match_probabilities():
    torch.manual_seed(0)
    m = build_pool("stochastic", 1, 4).train()
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, -5.0, 0.0, 0.0, 6.0]).repeat(20000).view(1, 1, -1)
    y = m(x).view(-1, 2)
    for col, values, probs in [(0, [1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4]), (1, [0, 6], [0.0, 1.0])]:
        freq = torch.stack([(y[:, col] == v).double().mean() for v in values])
        torch.testing.assert_close(freq, torch.tensor(probs, dtype=torch.float64), atol=0.012, rtol=0)


def test_mixed_train_is_a_coin_flip_and_seedable():
    m = build_pool("mixed", 2, 2).train()
    x = torch.randn(1, 1, 4, 4)
    mx, mean = F.max_pool2d(x, 2), F.avg_pool2d(x, 2)
    torch.manual_seed(1)
    outs = [m(x) for _ in range(400)]
    n_max = sum(torch.equal(o, mx) for o in outs)
    assert sum(torch.equal(o, mean) for o in outs) + n_max == 400 and 160 < n_max < 240
    torch.manual_seed(1)
    assert all(torch.equal(a, m(x)) for a in outs[:5])


def test_s3pool_train_samples_inside_each_stride_cell():
    torch.manual_seed(2)
    m = build_pool("s3pool", 2, 2, 2).train()
    x = torch.randn(1, 2, 12, 12)
    # stride-1 max pool is 11x11; the last cell's second choice is clipped to the last position
    dense = F.pad(F.max_pool2d(x, 2, 1), (0, 1, 0, 1), mode="replicate")
    seen = set()
    for _ in range(30):
        y = m(x)
        assert y.shape == (1, 2, 6, 6)
        # every output is the stride-1 max of a position inside its own 2x2 stride cell
        cells = dense.unfold(2, 2, 2).unfold(3, 2, 2).reshape(1, 2, 6, 6, -1)
        assert ((cells == y[..., None]).any(-1)).all()
        seen.add(y.sum().item())
    assert len(seen) > 1
    assert torch.equal(m.eval()(x), F.max_pool2d(x, 2, 2))


@pytest.mark.parametrize("name", ["mixed", "s3pool", "stochastic"])
def test_random_methods_pass_gradients_in_training_mode(name):
    """Training-mode sampling (the oracle test covers their eval mode): finite, non-zero gradients."""
    torch.manual_seed(3)
    m = build_pool(name, 3, 3, 2, 1, channels=3).train()
    x = (torch.rand(2, 3, 5, 6, 7) + 0.1).requires_grad_()
    y = m(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list_pools())
def test_output_shape_equals_max_pooling_on_random_geometries(name):
    rng = random.Random(name)
    for _ in range(6):
        dim = rng.randint(1, 3)
        k = tuple(rng.randint(1, 4) for _ in range(dim))
        s = tuple(rng.randint(1, 3) for _ in range(dim))
        p = tuple(rng.randint(0, kk // 2) for kk in k)
        ceil = rng.random() < 0.5
        shape = (2, 3) + tuple(rng.randint(kk + 1, 9) for kk in k)
        m = build_pool(name, dim, k, s, p, ceil, channels=3)
        ref = getattr(F, f"max_pool{dim}d")(torch.zeros(shape), k, s, p, ceil_mode=ceil)
        x = torch.rand(shape)
        assert m.train()(x).shape == ref.shape and m.eval()(x).shape == ref.shape, (dim, k, s, p, ceil)


def test_registry_errors_list_choices():
    with pytest.raises(ValueError, match="unknown pooling method 'nope'.*softpool"):
        build_pool("nope", 2, 2)
    with pytest.raises(ValueError, match="needs channels.*dpp_lite_sym.*trainable_lp"):
        build_pool("lip", 2, 2)
    assert set(ops.POOLS) == set(list_pools()) and len(list_pools()) == 15
    assert math.prod(build_pool("dpp_full_sym", 3, 3, channels=2).filter.shape) == 2 * 27


def _oracle(name, m, x, geom):
    """The pooling ``name`` written as a float64 per-window formula over ``m``'s own parameters (not
    detached), so autograd through it gives the reference gradients of the input and parameters."""
    dim, shape, k, s, p, ceil = geom
    C = shape[1]

    def gated(w):
        return lambda v, sl, c: (lambda g: g * v.max() + (1 - g) * v.mean())(torch.sigmoid((w(c)[sl] * v).sum()))

    def dpp(asym, f):
        def window(v, sl, c):
            weights = f[c][sl] if f is not None else torch.ones_like(v)
            d = v - (weights * v).sum() / weights.sum()
            d = d.clamp(min=0) if asym else d
            w = m.alpha[c] + torch.sqrt(d * d + 1e-6) ** m.lam[c]
            return (w * v).sum() / w.sum()
        return window

    if name == "lip":
        logits = torch.einsum("oc,nc...->no...", m.logit.weight.view(C, C), x) + m.logit.bias.view((1, C) + (1,) * dim)
        xs, ls = [], []
        out = brute.pool_windows(x, k, s, p, ceil, lambda v, sl, c: xs.append(v) or v.sum()).shape
        brute.pool_windows(logits, k, s, p, ceil, lambda v, sl, c: ls.append(v) or v.sum())
        return torch.stack([(torch.softmax(lv, 0) * xv).sum() for xv, lv in zip(xs, ls)]).view(out)
    if name == "avg":  # nn.AvgPool: zero padding counts, cells past the padding do not
        padded = F.pad(x, [q for pad in reversed(p) for q in (pad, pad)])
        out = brute.pool_windows(padded, k, s, (0,) * dim, ceil, lambda v, sl, c: v.mean())
        size = getattr(F, f"avg_pool{dim}d")(x.detach(), k, s, p, ceil).shape[2:]
        return out[(...,) + tuple(slice(0, n) for n in size)]  # ceil mode may add a window past the padding
    if name.startswith("dpp"):
        fn = dpp(name.endswith("asym"), m.filter if "full" in name else None)
    else:
        fn = {"max": lambda v, sl, c: v.max(), "sum": lambda v, sl, c: v.sum(),
              "lp": lambda v, sl, c: (v.abs() ** 3).sum() ** (1 / 3),
              "trainable_lp": lambda v, sl, c: (v.abs() ** m.p[c]).sum() ** (1 / m.p[c]),
              "mixed": lambda v, sl, c: 0.5 * v.max() + 0.5 * v.mean(),
              "gated": gated(lambda c: m.mask[0]),
              "stochastic": lambda v, sl, c: (v * v).sum() / v.sum(),  # positive inputs
              "s3pool": lambda v, sl, c: v.max(),
              "softpool": lambda v, sl, c: (torch.softmax(v, 0) * v).sum()}[name]
    return brute.pool_windows(x, k, s, p, ceil, fn)


TILED = (3, (2, 3, 4, 6, 8), (2, 2, 2), (2, 2, 2), (0, 0, 0), False)  # windows tile the input exactly


@pytest.mark.parametrize("name", list_pools())
@pytest.mark.parametrize("geom", [GEOMS[1], GEOMS[2], TILED], ids=["2d", "3d-pad-ceil", "3d-tiled"])
def test_gradients_equal_the_float64_oracle(name, geom):
    """Input and parameter gradients of every method (random ones in eval mode) against autograd
    through its float64 per-window formula."""
    dim, shape, k, s, p, ceil = geom
    torch.manual_seed(5)
    m = _module(name, geom, **({"p": 3.0} if name == "lp" else {})).double().eval()
    with torch.no_grad():
        for pname, param in m.named_parameters():
            if pname == "p":
                param.copy_(torch.linspace(1.5, 4.0, shape[1]))  # inside the clamp p >= 1
            elif pname in ("alpha", "lam"):
                param.copy_(torch.rand(shape[1]) * (2 if pname == "lam" else 1) + 0.1)
            elif pname == "filter":
                param.uniform_(0.2, 2.0)
            else:
                param.normal_(0, 0.5)
    x = torch.randn(shape, dtype=torch.float64) * 2
    if name == "stochastic":
        x = x.abs() + 0.1
    x.requires_grad_()
    g = torch.randn(m(x).shape, dtype=torch.float64)
    params = [x] + list(m.parameters())
    got = torch.autograd.grad(m(x), params, g)
    expected = torch.autograd.grad(_oracle(name, m, x, geom), params, g, allow_unused=True)
    for (pname, a), b in zip([("input", None)] + list(m.named_parameters()), zip(got, expected)):
        torch.testing.assert_close(b[0], b[1], rtol=1e-8, atol=1e-10, msg=lambda text: f"{name} {pname}: {text}")


@pytest.mark.parametrize("shape,k", [((2, 3, 4, 6, 8), (2, 2, 2)), ((1, 2, 6, 4, 9), (3, 2, 3)),
                                     ((2, 2, 5, 6, 7), (2, 2, 2))])  # the last does not tile
def test_stochastic_eval_gradient_tiled_and_not(shape, k):
    """The hand-written backward of stochastic pooling's expectation, where windows tile the input
    (a broadcast over a view) and where they do not, against autograd of the float64 window formula;
    windows with no positive cell included."""
    x = torch.randn(shape, dtype=torch.float64)
    x[0, 0, :k[0], :k[1], :k[2]] = -1.0  # a window without mass: output and gradient 0
    x.requires_grad_()
    m = build_pool("stochastic", 3, k).eval()
    y = m(x)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)

    def expectation(v, slots, c):
        a = v.clamp(min=0)
        return (a * a).sum() / a.sum() if bool(a.sum() > 0) else a.sum() * 0

    xr = x.detach().clone().requires_grad_()
    ref = brute.pool_windows(xr, k, k, (0, 0, 0), False, expectation)
    torch.testing.assert_close(y, ref.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx, torch.autograd.grad(ref, xr, g)[0], rtol=1e-10, atol=1e-12)
    assert y[0, 0, 0, 0, 0] == 0 and (gx[0, 0, :k[0], :k[1], :k[2]] == 0).all()


@pytest.mark.parametrize("name", ["stochastic", "lp", "trainable_lp"])
def test_hand_written_backwards_take_any_grad_layout(name):
    """A channels-last or expanded output gradient gives the same input gradient as a contiguous one."""
    x = torch.randn(2, 3, 4, 6, 8, dtype=torch.float64, requires_grad=True)
    m = build_pool(name, 3, 2, channels=3).double().eval()
    y = m(x)
    g = torch.randn_like(y)
    (ref,) = torch.autograd.grad(m(x), x, g)
    for layout in (g.contiguous(memory_format=torch.channels_last_3d), g[:, :1].expand_as(g)):
        (got,) = torch.autograd.grad(m(x), x, layout)
        (want,) = torch.autograd.grad(m(x), x, layout.contiguous())
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert ref.shape == x.shape


@pytest.mark.parametrize("path", ["fused", "composition"])
def test_trainable_lp_backward_twice_with_retained_graph(path, monkeypatch):
    """The composition's learned-p backward reuses its saved ln P in place; a second backward through
    the same graph (retain_graph=True) must still give the same gradients (the fused kernel too)."""
    from vidpool.ops import zoo
    if path == "composition":
        monkeypatch.setattr(zoo, "_fused_available", lambda t, op: False)
    m = build_pool("trainable_lp", 3, 2, channels=3).double()
    with torch.no_grad():
        m.p.copy_(torch.tensor([1.25, 2.5, 4.0]))
    x = torch.randn(2, 3, 4, 6, 8, dtype=torch.float64)
    x[0, :, 0, 0, :2] = 0.0  # zero cells
    x.requires_grad_()
    y = m(x)
    g = torch.randn_like(y)
    first = torch.autograd.grad(y, [x, m.p], g, retain_graph=True)
    second = torch.autograd.grad(y, [x, m.p], g)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    geom = (3, tuple(x.shape), (2, 2, 2), (2, 2, 2), (0, 0, 0), False)
    expected = torch.autograd.grad(_oracle("trainable_lp", m, x, geom), [x, m.p], g)
    for a, b in zip(first, expected):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("path", ["fused", "tiled"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_gated_fast_paths_match_conv_and_pooling_with_ties(per_channel, path, monkeypatch):
    """Gated pooling's fused CPU kernel, and (other devices and dtypes, forced here) the strided slices
    with a scatter to max pooling's indices where windows tile the input: against torch's conv3d +
    max/avg pooling under autograd, on integer inputs full of ties (max pooling's choice of cell must
    be kept) and a channels-last input."""
    from vidpool.ops import zoo
    if path == "tiled":
        monkeypatch.setattr(zoo, "_fused_available", lambda t, op: False)
    elif not zoo._fused_available(torch.zeros(1, dtype=torch.float64), "gated_pool"):
        pytest.skip("vidpool's CPU kernels are not built")
    m = build_pool("gated", 3, 2, channels=4, per_channel=per_channel).double()
    with torch.no_grad():
        m.mask.normal_(0, 0.5)
    x = torch.randint(-2, 3, (2, 4, 4, 6, 8)).double().contiguous(memory_format=torch.channels_last_3d)
    x.requires_grad_()
    y = m(x)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, m.mask], g)
    weight = m.mask.view(-1, 1, 2, 2, 2).expand(4, 1, 2, 2, 2)
    gate = torch.sigmoid(F.conv3d(x, weight, stride=2, groups=4))
    ref = gate * F.max_pool3d(x, 2) + (1 - gate) * F.avg_pool3d(x, 2)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(got, torch.autograd.grad(ref, [x, m.mask], g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("reward", ["sym", "asym"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("case", [
    (3, (2, 3, 5, 7, 37), (3, 2, 3), (2, 2, 2), (1, 0, 1), True, "channels_last"),  # rows of several vectors
    (3, (1, 2, 4, 6, 9), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, "gapped"),
    (2, (2, 3, 9, 19), (3, 3), (1, 2), (1, 1), False, "contiguous"),            # overlapping windows
    (1, (3, 2, 23), (4,), (3,), (2,), True, "contiguous"),
    # contiguous rows wide enough for whole-vector loads (strides 1 and 2) and, k = s = 2 tiling the
    # input, whole-vector stores of the gradient
    (3, (2, 3, 4, 6, 40), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, "contiguous"),
    (3, (1, 2, 3, 5, 41), (3, 3, 3), (1, 1, 1), (1, 1, 1), False, "contiguous"),
    (2, (1, 2, 7, 45), (3, 3), (2, 2), (1, 1), True, "contiguous"),
])
def test_dpp_lite_fused_kernel_matches_the_composition(case, dtype, reward, monkeypatch):
    """The fused CPU kernel for DPP lite against the unfold composition under autograd (the path CUDA
    tensors take), for values and the input, alpha and lambda gradients; any layout; bitwise the same
    for 1 and 3 threads."""
    from vidpool.ops import zoo
    dim, shape, k, s, p, ceil, layout = case
    x = torch.randn(shape, dtype=dtype) * 2
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "gapped":
        x = torch.randn(shape[:-1] + (2 * shape[-1],), dtype=dtype)[..., ::2]
    m = build_pool(f"dpp_lite_{reward}", dim, k, s, p, ceil, channels=shape[1]).to(dtype)
    with torch.no_grad():
        m.alpha.copy_(torch.rand(shape[1]) + 0.1)
        m.lam.copy_(torch.rand(shape[1]) * 2 + 0.1)
    if not zoo._fused_available(x, "dpp_pool"):
        pytest.skip("vidpool's CPU kernels are not built")
    params = [x.requires_grad_(), m.alpha, m.lam]
    y = m(x)
    g = torch.randn(y.shape, dtype=dtype)[..., :1].expand(y.shape)  # a stride-0 grad_output too
    got = torch.autograd.grad(y, params, g)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        y1 = m(x)
        got1 = torch.autograd.grad(y1, params, g)
        torch.set_num_threads(3)
        y3 = m(x)
        got3 = torch.autograd.grad(y3, params, g)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip((y1,) + got1, (y3,) + got3):
        assert torch.equal(a, b)
    monkeypatch.setattr(zoo, "_fused_available", lambda t, op: False)
    m64 = m.double()  # the reference in float64 (float32 differs from it by rounding, either path)
    params64 = [x.detach().double().requires_grad_(), m64.alpha, m64.lam]
    ref = m64(params64[0])
    expected = torch.autograd.grad(ref, params64, g.double())
    for name, a, b in zip(("output", "input", "alpha", "lambda"), (y,) + got, (ref,) + expected):
        # float32: within 1e-3 of the largest magnitude (both paths measured ~7e-5 over 300 draws)
        atol = 1e-10 if dtype == torch.float64 else 1e-3 * float(b.detach().abs().max())
        torch.testing.assert_close(a.double(), b, rtol=1e-10 if dtype == torch.float64 else 0, atol=atol,
                                   msg=lambda text: f"{name}: {text}")


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("case", [
    (3, (2, 3, 5, 7, 37), (3, 2, 3), (2, 2, 2), (1, 0, 1), True, "channels_last"),
    (3, (1, 2, 4, 6, 9), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, "gapped"),
    (2, (2, 3, 9, 19), (3, 3), (1, 2), (1, 1), False, "contiguous"),
    (3, (2, 3, 4, 6, 40), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, "contiguous"),
])
def test_gated_fused_kernel_matches_the_convolution(case, per_channel, monkeypatch):
    """The fused CPU kernel for gated pooling against the convolution composition (float64, autograd)
    over padding, ceil_mode, overlapping windows and layouts; bitwise the same for 1 and 3 threads."""
    from vidpool.ops import zoo
    dim, shape, k, s, p, ceil, layout = case
    x = torch.randn(shape, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "gapped":
        x = torch.randn(shape[:-1] + (2 * shape[-1],), dtype=torch.float64)[..., ::2]
    if not zoo._fused_available(x, "gated_pool"):
        pytest.skip("vidpool's CPU kernels are not built")
    m = build_pool("gated", dim, k, s, p, ceil, channels=shape[1], per_channel=per_channel).double()
    with torch.no_grad():
        m.mask.normal_(0, 0.5)
    _fused_against_composition(m, x, monkeypatch)


@pytest.mark.parametrize("name", ["lp", "trainable_lp"])
@pytest.mark.parametrize("case", [
    (3, (2, 3, 5, 7, 37), (3, 2, 3), (2, 2, 2), (1, 0, 1), True, "channels_last"),
    (3, (1, 2, 4, 6, 9), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, "gapped"),
    (2, (2, 3, 9, 19), (3, 3), (1, 2), (1, 1), False, "contiguous"),
    (3, (2, 3, 4, 6, 40), (2, 2, 2), (2, 2, 2), (0, 0, 0), False, "contiguous"),
])
def test_lp_fused_kernel_matches_the_composition(case, name, monkeypatch):
    """The fused CPU kernel for Lp pooling (each window scaled by its own max) against the composition
    (scaled by the plane's max, hand-written backward; what CUDA tensors take), float64, with zero cells
    and an all-zero window; bitwise the same for 1 and 3 threads."""
    from vidpool.ops import zoo
    dim, shape, k, s, p, ceil, layout = case
    x = torch.randn(shape, dtype=torch.float64) * 2
    x[0, 0, ..., :3] = 0.0
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    elif layout == "gapped":
        x = torch.cat([x, x], dim=-1)[..., ::2]
    if not zoo._fused_available(x, "lp_pool"):
        pytest.skip("vidpool's CPU kernels are not built")
    m = build_pool(name, dim, k, s, p, ceil, channels=shape[1], **({"p": 3.0} if name == "lp" else {})).double()
    if name == "trainable_lp":
        with torch.no_grad():
            m.p.copy_(torch.linspace(1.25, 4.0, shape[1]))
    _fused_against_composition(m, x, monkeypatch)


def _fused_against_composition(m, x, monkeypatch):
    """m(x) and its input and parameter gradients through a fused CPU kernel: bitwise the same for 1 and
    3 threads, and equal (float64) to the composition that other devices take."""
    from vidpool.ops import zoo
    params = [x.requires_grad_()] + list(m.parameters())
    y = m(x)
    g = torch.randn(y.shape, dtype=torch.float64)
    got = torch.autograd.grad(y, params, g)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = (m(x),) + torch.autograd.grad(m(x), params, g)
        torch.set_num_threads(3)
        three = (m(x),) + torch.autograd.grad(m(x), params, g)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, three):
        assert torch.equal(a, b)
    monkeypatch.setattr(zoo, "_fused_available", lambda t, op: False)
    ref = m(x)
    for a, b in zip((y,) + got, (ref,) + torch.autograd.grad(ref, params, g)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _brute_avg3d(x, k, s, p, ceil, count_include_pad):
    """Window means by definition: the sum over the window's cells inside the input, divided by the
    number of its cells inside [-p, n + p) (count_include_pad) or inside the input."""
    out = F.max_pool3d(x.float(), k, s, p, ceil_mode=ceil).shape[2:]  # torch's output size
    y = torch.zeros(x.shape[:2] + out, dtype=torch.float64)
    for o in itertools.product(*[range(n) for n in out]):
        starts = [oi * si - pi for oi, si, pi in zip(o, s, p)]
        inside = [slice(max(a, 0), min(a + kk, n)) for a, kk, n in zip(starts, k, x.shape[2:])]
        lo = [max(a, -pi) for a, pi in zip(starts, p)] if count_include_pad else [sl.start for sl in inside]
        hi = [min(a + kk, n + pi) for a, kk, n, pi in zip(starts, k, x.shape[2:], p)] if count_include_pad \
            else [sl.stop for sl in inside]
        count = math.prod(h - low for low, h in zip(lo, hi))
        y[(slice(None), slice(None)) + o] = x[(slice(None), slice(None)) + tuple(inside)].double().sum((2, 3, 4)) / count
    return y


def test_3d_average_pooling_takes_inputs_smaller_than_the_kernel():
    """torch's avg_pool3d refuses a 2-frame input to a 3x3x3 pool with padding 1 (I3D's last stage at
    8 input frames); vidpool's equals the window means by definition there and torch elsewhere."""
    from vidpool.ops._avg_pool import avg_pool3d
    with pytest.raises(RuntimeError, match="smaller than kernel"):
        F.avg_pool3d(torch.zeros(1, 1, 2, 3, 3), 3, 1, 1)
    rng = random.Random(3)
    small = 0
    for case in range(60):
        k = tuple(rng.randint(1, 4) for _ in range(3))
        s = tuple(rng.randint(1, 3) for _ in range(3))
        p = tuple(rng.randint(0, kk // 2) for kk in k)
        ceil, cip = rng.random() < 0.5, rng.random() < 0.5
        shape = (2, 2) + tuple(max(1, rng.randint(kk - 2 * pp, kk + 3)) for kk, pp in zip(k, p))
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        y = avg_pool3d(x, k, s, p, ceil, cip)
        torch.testing.assert_close(y, _brute_avg3d(x.detach(), k, s, p, ceil, cip), rtol=1e-12, atol=1e-12)
        small += any(n < kk for n, kk in zip(shape[2:], k))
        # the gradient: the transpose of the window means, from the same definition through autograd
        u = torch.randn_like(y)
        (g,) = torch.autograd.grad(y, x, u)
        x2 = x.detach().requires_grad_()
        (g_ref,) = torch.autograd.grad(_brute_avg3d_autograd(x2, k, s, p, ceil, cip), x2, u)
        torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    assert small >= 15  # the geometries torch refuses are well represented
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        avg_pool3d(torch.zeros(1, 1, 2, 2, 2), 3, 1, 2)


def _brute_avg3d_autograd(x, k, s, p, ceil, cip):
    y = _brute_avg3d(x.detach(), k, s, p, ceil, cip)
    # each output is a weighted sum of inputs: recover the weights by the definition, one-hot inputs
    n = x[0, 0].numel()
    basis = torch.eye(n, dtype=torch.float64).reshape((n, 1) + tuple(x.shape[2:]))
    weights = _brute_avg3d(basis, k, s, p, ceil, cip).reshape(n, -1)  # (cells, outputs)
    flat = x.reshape(x.shape[0] * x.shape[1], n) @ weights
    return flat.reshape(y.shape)


@pytest.mark.parametrize("name", list_pools())
def test_every_3d_method_takes_what_max_pooling_takes(name):
    """2x3x3 and 1x2x5 inputs to a 3x3x3 pool with padding 1: every method gives max pooling's output
    shape in train and eval mode, and a gradient."""
    for shape in ((2, 4, 2, 3, 3), (1, 4, 1, 2, 5)):
        m = build_pool(name, 3, 3, 1, 1, channels=4).double()
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        ref = F.max_pool3d(x.detach(), 3, 1, 1).shape
        assert m.eval()(x).shape == ref
        y = m.train()(x)
        assert y.shape == ref
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
