"""The fastai book's chapter 17 (a neural net from the foundations) with the import line changed.

The chapter is plain PyTorch until its last cell, which subclasses fastai's ``Module`` (no ``super().__init__()``);
``%time``/``%timeit`` cells run once, untimed. All values asserted are the chapter's own (shapes, the broadcasting
results, the hand-written gradients equal to autograd's).
"""
from math import sqrt

import pytest
import torch
from torch import tensor

from learnkit.vision.all import *  # noqa: F403  (the book: from fastai.gen_doc.nbdoc import *)


def test_matrix_multiplication_and_broadcasting():
    def matmul(a, b):
        ar, ac = a.shape
        br, bc = b.shape
        assert ac == br
        c = torch.zeros(ar, bc)
        for i in range(ar):
            for j in range(bc):
                for k in range(ac): c[i, j] += a[i, k] * b[k, j]
        return c
    m1 = torch.randn(5, 28*28)
    m2 = torch.randn(784, 10)
    t1 = matmul(m1[:2, :20], m2[:20])
    assert torch.allclose(t1, m1[:2, :20] @ m2[:20], atol=1e-4)
    a = tensor([10., 6, -4])
    b = tensor([2., 8, 7])
    assert (a + b).tolist() == [12., 14., 3.]
    assert (a < b).tolist() == [False, True, True]
    assert ((a < b).all().item(), (a == b).all().item()) == (False, False)
    assert (a + b).mean().item() == pytest.approx(9.6667, abs=1e-4)
    m = tensor([[1., 2, 3], [4, 5, 6], [7, 8, 9]])
    assert (m*m).tolist() == [[1., 4, 9], [16, 25, 36], [49, 64, 81]]
    n = tensor([[1., 2, 3], [4, 5, 6]])
    with pytest.raises(RuntimeError):
        m*n

    def matmul(a, b):
        ar, ac = a.shape
        br, bc = b.shape
        assert ac == br
        c = torch.zeros(ar, bc)
        for i in range(ar):
            for j in range(bc): c[i, j] = (a[i] * b[:, j]).sum()
        return c
    assert torch.allclose(matmul(m1, m2), m1 @ m2, atol=1e-3)
    a = tensor([10., 6, -4])
    assert (a > 0).tolist() == [True, True, False]
    assert torch.allclose((m - 5) / 2.73, tensor([[-1.4652, -1.0989, -0.7326], [-0.3663, 0., 0.3663], [0.7326, 1.0989, 1.4652]]), atol=1e-4)
    c = tensor([10., 20, 30])
    assert m.shape == (3, 3) and c.shape == (3,)
    assert (m + c).tolist() == [[11., 22, 33], [14, 25, 36], [17, 28, 39]]
    assert c.expand_as(m).tolist() == [[10., 20, 30]] * 3
    t = c.expand_as(m)
    assert t.untyped_storage().nbytes() == 3 * 4  # the book's t.storage(): only three floats
    assert (t.stride(), t.shape) == ((0, 1), (3, 3))
    assert (c + m).tolist() == (m + c).tolist()
    m = tensor([[1., 2, 3], [4, 5, 6]])
    assert (c + m).tolist() == [[11., 22, 33], [14, 25, 36]]
    c = tensor([10., 20])
    with pytest.raises(RuntimeError):
        c + m
    c = tensor([10., 20, 30])
    m = tensor([[1., 2, 3], [4, 5, 6], [7, 8, 9]])
    c = c.unsqueeze(1)
    assert (m.shape, c.shape) == ((3, 3), (3, 1))
    assert (c + m).tolist() == [[11., 12, 13], [24, 25, 26], [37, 38, 39]]
    t = c.expand_as(m)
    assert (t.stride(), t.shape) == ((1, 0), (3, 3))
    c = tensor([10., 20, 30])
    assert (c.shape, c.unsqueeze(0).shape, c.unsqueeze(1).shape) == ((3,), (1, 3), (3, 1))
    assert (c.shape, c[None, :].shape, c[:, None].shape) == ((3,), (1, 3), (3, 1))
    assert (c[None].shape, c[..., None].shape) == ((1, 3), (3, 1))

    def matmul(a, b):
        ar, ac = a.shape
        br, bc = b.shape
        assert ac == br
        c = torch.zeros(ar, bc)
        for i in range(ar):
            c[i] = (a[i].unsqueeze(-1) * b).sum(dim=0)
        return c
    assert torch.allclose(matmul(m1, m2), m1 @ m2, atol=1e-3)

    def matmul(a, b): return torch.einsum('ik,kj->ij', a, b)
    assert torch.allclose(matmul(m1, m2), m1 @ m2, atol=1e-4)


def test_forward_and_backward_passes():
    torch.manual_seed(0)

    def lin(x, w, b): return x @ w + b
    x = torch.randn(200, 100)
    y = torch.randn(200)
    w1, b1, w2, b2 = torch.randn(100, 50), torch.zeros(50), torch.randn(50, 1), torch.zeros(1)
    l1 = lin(x, w1, b1)
    assert l1.shape == (200, 50) and l1.std() > 5  # the book: std 10.18
    x = torch.randn(200, 100)
    for i in range(50): x = x @ torch.randn(100, 100)
    assert torch.isnan(x[0:5, 0:5]).all()
    x = torch.randn(200, 100)
    for i in range(50): x = x @ (torch.randn(100, 100) * 0.01)
    assert (x[0:5, 0:5] == 0).all()
    x = torch.randn(200, 100)
    for i in range(50): x = x @ (torch.randn(100, 100) * 0.1)
    assert 0.1 < x.std() < 10
    x = torch.randn(200, 100)
    y = torch.randn(200)
    w1 = torch.randn(100, 50) / sqrt(100)
    b1 = torch.zeros(50)
    w2 = torch.randn(50, 1) / sqrt(50)
    b2 = torch.zeros(1)
    l1 = lin(x, w1, b1)
    assert abs(l1.mean()) < 0.1 and abs(l1.std() - 1) < 0.1

    def relu(x): return x.clamp_min(0.)
    l2 = relu(l1)
    assert 0.3 < l2.mean() < 0.5 and 0.5 < l2.std() < 0.7  # the book: 0.3961, 0.5783
    x = torch.randn(200, 100)
    for i in range(50): x = relu(x @ (torch.randn(100, 100) * 0.1))
    assert x[0:5, 0:5].abs().max() < 1e-3  # the activations vanish
    x = torch.randn(200, 100)
    for i in range(50): x = relu(x @ (torch.randn(100, 100) * sqrt(2/100)))
    assert x.std() > 0.01
    x = torch.randn(200, 100)
    y = torch.randn(200)
    w1 = torch.randn(100, 50) * sqrt(2 / 100)
    b1 = torch.zeros(50)
    w2 = torch.randn(50, 1) * sqrt(2 / 50)
    b2 = torch.zeros(1)
    l1 = lin(x, w1, b1)
    l2 = relu(l1)
    assert 0.4 < l2.mean() < 0.7 and 0.6 < l2.std() < 1.1  # the book: 0.5661, 0.8339

    def model(x):
        l1 = lin(x, w1, b1)
        l2 = relu(l1)
        l3 = lin(l2, w2, b2)
        return l3
    out = model(x)
    assert out.shape == (200, 1)

    def mse(output, targ): return (output.squeeze(-1) - targ).pow(2).mean()
    loss = mse(out, y)

    def mse_grad(inp, targ):
        inp.g = 2. * (inp.squeeze() - targ).unsqueeze(-1) / inp.shape[0]

    def relu_grad(inp, out):
        inp.g = (inp > 0).float() * out.g

    def lin_grad(inp, out, w, b):
        inp.g = out.g @ w.t()
        w.g = inp.t() @ out.g
        b.g = out.g.sum(0)

    from sympy import symbols, diff
    sx, sy = symbols('sx sy')
    assert str(diff(sx**2, sx)) == "2*sx"

    def forward_and_backward(inp, targ):
        l1 = inp @ w1 + b1
        l2 = relu(l1)
        out = l2 @ w2 + b2
        loss = mse(out, targ)
        mse_grad(out, targ)
        lin_grad(l2, out, w2, b2)
        relu_grad(l1, l2)
        lin_grad(inp, l1, w1, b1)
    forward_and_backward(x, y)
    ref = [t.clone().requires_grad_() for t in (x, w1, b1, w2, b2)]
    xr, w1r, b1r, w2r, b2r = ref
    mse(relu(xr @ w1r + b1r) @ w2r + b2r, y).backward()
    for mine, theirs in zip((x, w1, b1, w2, b2), ref):
        assert torch.allclose(mine.g, theirs.grad, atol=1e-5)  # the hand-written backward pass is autograd's
    grads = [t.g.clone() for t in (x, w1, b1, w2, b2)]

    class Relu():
        def __call__(self, inp):
            self.inp = inp
            self.out = inp.clamp_min(0.)
            return self.out

        def backward(self): self.inp.g = (self.inp > 0).float() * self.out.g

    class Lin():
        def __init__(self, w, b): self.w, self.b = w, b

        def __call__(self, inp):
            self.inp = inp
            self.out = inp@self.w + self.b
            return self.out

        def backward(self):
            self.inp.g = self.out.g @ self.w.t()
            self.w.g = self.inp.t() @ self.out.g
            self.b.g = self.out.g.sum(0)

    class Mse():
        def __call__(self, inp, targ):
            self.inp = inp
            self.targ = targ
            self.out = (inp.squeeze() - targ).pow(2).mean()
            return self.out

        def backward(self):
            x = (self.inp.squeeze()-self.targ).unsqueeze(-1)
            self.inp.g = 2.*x/self.targ.shape[0]

    class Model():
        def __init__(self, w1, b1, w2, b2):
            self.layers = [Lin(w1, b1), Relu(), Lin(w2, b2)]
            self.loss = Mse()

        def __call__(self, x, targ):
            for l in self.layers: x = l(x)
            return self.loss(x, targ)

        def backward(self):
            self.loss.backward()
            for l in reversed(self.layers): l.backward()
    model = Model(w1, b1, w2, b2)
    loss = model(x, y)
    model.backward()
    for t, g in zip((x, w1, b1, w2, b2), grads):
        assert torch.allclose(t.g, g, atol=1e-6)

    class LayerFunction():
        def __call__(self, *args):
            self.args = args
            self.out = self.forward(*args)
            return self.out

        def forward(self): raise Exception('not implemented')
        def bwd(self): raise Exception('not implemented')
        def backward(self): self.bwd(self.out, *self.args)

    class Relu(LayerFunction):
        def forward(self, inp): return inp.clamp_min(0.)
        def bwd(self, out, inp): inp.g = (inp > 0).float() * out.g

    class Mse(LayerFunction):
        def forward(self, inp, targ): return (inp.squeeze() - targ).pow(2).mean()

        def bwd(self, out, inp, targ):
            inp.g = 2*(inp.squeeze()-targ).unsqueeze(-1) / targ.shape[0]
    r, o = Relu(), tensor([-1., 2.])
    r(o).g = tensor([1., 1.])
    r.backward()
    assert o.g.tolist() == [0., 1.]

    from torch.autograd import Function

    class MyRelu(Function):
        @staticmethod
        def forward(ctx, i):
            result = i.clamp_min(0.)
            ctx.save_for_backward(i)
            return result

        @staticmethod
        def backward(ctx, grad_output):
            i, = ctx.saved_tensors
            return grad_output * (i > 0).float()
    i = tensor([-1., 3.], requires_grad=True)
    MyRelu.apply(i).sum().backward()
    assert i.grad.tolist() == [0., 1.]


def test_going_to_pytorch():
    import torch.nn as nn

    def mse(output, targ): return (output.squeeze(-1) - targ).pow(2).mean()

    class LinearLayer(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(n_out, n_in) * sqrt(2/n_in))
            self.bias = nn.Parameter(torch.zeros(n_out))

        def forward(self, x): return x @ self.weight.t() + self.bias
    lin = LinearLayer(10, 2)
    p1, p2 = lin.parameters()
    assert (p1.shape, p2.shape) == ((2, 10), (2,))

    class Model(nn.Module):
        def __init__(self, n_in, nh, n_out):
            super().__init__()
            self.layers = nn.Sequential(nn.Linear(n_in, nh), nn.ReLU(), nn.Linear(nh, n_out))
            self.loss = mse

        def forward(self, x, targ): return self.loss(self.layers(x).squeeze(), targ)

    class Model2(Module):  # the book's fastai version: no super().__init__() needed
        def __init__(self, n_in, nh, n_out):
            self.layers = nn.Sequential(nn.Linear(n_in, nh), nn.ReLU(), nn.Linear(nh, n_out))
            self.loss = mse

        def forward(self, x, targ): return self.loss(self.layers(x).squeeze(), targ)
    x, y = torch.randn(8, 4), torch.randn(8)
    for M in (Model, Model2):
        m = M(4, 3, 1)
        assert len(list(m.parameters())) == 4 and m(x, y).ndim == 0
