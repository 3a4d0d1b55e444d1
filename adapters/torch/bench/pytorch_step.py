"""The learner's training step in PyTorch eager: the baseline of deepnode-torch's tch step.

The same model and step as `LocalModel::step` with the devnet learner's choices: the TEXT
encoder (embedding, two causal convolutions, a residual), the gate reading the context so far
(the causal running mean of the encoding) with noisy top-k and the load-balancing terms, the
peers' answers mixed by the gate, the head `W_o h + b + A G` with the shared readout
`A = s E + A'`, the readout's own cross-entropy, the backward (which gives each peer `dL/df_j`),
the Fisher scores and each peer's leave-one-out benefit, Adam, and the student's distillation
steps. It is written the way a PyTorch user would write it (`topk`, `F.cross_entropy`,
`torch.optim.Adam`); the tch step follows the gating crate's tie and NaN rules instead, which
agree on the finite, untied logits of a real batch.

Its inputs come from a fixture the Rust side writes (`deepnode_torch::baseline`): the
configuration, the initial parameters, the batches, the gate's noise and every peer's answer.

    python pytorch_step.py check FIXTURE OUT   # every batch once; results to OUT
    python pytorch_step.py serve FIXTURE       # timed rounds on request (see `serve`)

Files are safetensors, read and written here with torch alone (no numpy, no safetensors
package).
"""

import ctypes
import json
import math
import struct
import sys
import time
import warnings

# torch warns once per process that numpy is missing; nothing here uses numpy.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    """The named tensors of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = bytearray(data[8 + size :])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = DTYPES[info["dtype"]]
        count = (end - begin) // dtype.itemsize
        flat = torch.frombuffer(body, dtype=dtype, offset=begin, count=count) if count else torch.empty(0, dtype=dtype)
        out[name] = flat.reshape(info["shape"]).clone()
    return out


def write_safetensors(tensors, path):
    """Writes named tensors (f32, f64, i64) as a safetensors file."""
    header, chunks, offset = {}, [], 0
    for name, t in sorted(tensors.items()):
        t = t.detach().contiguous().cpu()
        raw = ctypes.string_at(t.data_ptr(), t.numel() * t.element_size())
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for c in chunks:
            f.write(c)


class Phases:
    """Wall-clock seconds per phase of the step, named as in the tch step's `StepTimings`."""

    NAMES = ("route", "peers", "forward", "scores", "backward", "optimizer", "grads", "student")

    def __init__(self):
        self.total = dict.fromkeys(self.NAMES, 0.0)
        self.clock = time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.total[name] += now - self.clock
        self.clock = now


class Step:
    """The model, its two Adam optimizers, and the training step."""

    def __init__(self, fixture):
        cfg = {k[len("config.") :]: float(v) for k, v in fixture.items() if k.startswith("config.")}
        self.k = int(cfg["k"])
        self.peers = int(cfg["peers"])
        self.dim = int(cfg["dim"])
        self.kernel = int(cfg["kernel"])
        self.student_steps = int(cfg["student_steps"])
        self.balance_weight = cfg["balance_weight"]
        params = {k[len("param.") :]: v for k, v in fixture.items() if k.startswith("param.")}
        self.readout_e = params.pop("readout_e")
        for v in params.values():
            v.requires_grad_(True)
        self.params = params
        node = [v for n, v in sorted(params.items()) if not n.startswith("student.")]
        student = [v for n, v in sorted(params.items()) if n.startswith("student.")]
        self.opt = torch.optim.Adam(node, lr=cfg["lr"], betas=(0.9, 0.999), eps=1e-8)
        self.student_opt = torch.optim.Adam(student, lr=cfg["student_lr"], betas=(0.9, 0.999), eps=1e-8)

    def encode(self, prefix, tokens):
        """The TEXT encoder `[B, S]` bytes to `[B, S, D]`."""
        p = self.params
        e = F.embedding(tokens, p[prefix + "embed"])
        pad = (self.kernel - 1, 0)
        t = F.conv1d(F.pad(e.transpose(1, 2), pad), p[prefix + "conv1.weight"], p[prefix + "conv1.bias"])
        t = F.conv1d(F.pad(F.gelu(t), pad), p[prefix + "conv2.weight"], p[prefix + "conv2.bias"])
        return t.transpose(1, 2) + e

    def mixing(self):
        """`A = A' + s E`."""
        p = self.params
        return p["mix_w"] + self.readout_e * p["readout_s"]

    def step(self, batch, eps, answers, phases):
        """One training step; returns (loss, distill, fisher, benefit, peer grads)."""
        p, k, d = self.params, self.k, self.dim
        seq = batch.shape[1] - 1
        inputs, targets = batch[:, :seq], batch[:, 1:]
        rows = inputs.numel()
        targets = targets.reshape(rows)
        own3 = self.encode("encoder.", inputs)
        counts = torch.arange(1, seq + 1, dtype=torch.float32).view(1, seq, 1)
        x = (own3.cumsum(1) / counts).reshape(rows, d)
        clean = x @ p["w_gate"]
        # softplus as the tch step writes it (the gating crate's formula): the same values as
        # F.softplus, and the same gradient at 0, where W_noise starts (0 there, not 1/2).
        z_noise = x @ p["w_noise"]
        sd = torch.relu(z_noise) + torch.log1p(torch.exp(-z_noise.abs()))
        noisy = clean + eps * sd
        top = noisy.topk(k + 1, dim=1)
        indices = top.indices[:, :k]
        gates = torch.softmax(top.values[:, :k], dim=1)
        chosen = torch.unique(indices).tolist()
        phases.lap("route")

        shape = answers.shape[1:]
        responses = []
        for j in range(self.peers):
            if j in chosen:
                responses.append(answers[j].detach().requires_grad_(True))
            else:
                responses.append(torch.zeros(shape))
        phases.lap("peers")

        every = torch.stack([r.reshape(rows, d) for r in responses], 1)
        slots = every.gather(1, indices.unsqueeze(-1).expand(rows, k, d))
        mixed = (gates.unsqueeze(-1) * slots).sum(1)
        own = own3.reshape(rows, d)
        a = self.mixing()
        logits = own @ p["own_w"].t() + p["own_b"] + mixed @ a.t()
        cross_entropy = F.cross_entropy(logits, targets)
        importance = torch.zeros_like(noisy).scatter_add(1, indices, gates).sum(0)
        selected = torch.zeros_like(noisy).scatter(1, indices, 1.0) > 0
        threshold = torch.where(selected, top.values[:, k : k + 1], top.values[:, k - 1 : k])
        z = (clean - threshold) / torch.where(sd == 0, torch.ones_like(sd), sd)
        load = torch.where(sd == 0, selected.float(), 0.5 * torch.erfc(-z / math.sqrt(2))).sum(0)

        def cv2(v):
            mean = v.mean()
            return ((v - mean) ** 2).mean() / (mean**2 + 1e-10)

        total = cross_entropy + (cv2(importance) + cv2(load)) * self.balance_weight
        total = total + F.cross_entropy(own @ self.readout_e.t() + p["readout_b"], targets)
        phases.lap("forward")

        with torch.no_grad():
            a_ = a.detach()
            terms = (gates.unsqueeze(-1) * slots).detach()  # [rows, k, d]
            u = terms @ a_.t()  # [rows, k, 256]: the logits' change without slot s
            prob = torch.softmax(logits.detach(), 1).unsqueeze(1)
            pu = (prob * u).sum(-1)
            q = (prob * u * u).sum(-1) - pu * pu
            flat = indices.reshape(-1)
            fisher = torch.zeros(self.peers).index_add_(0, flat, q.reshape(-1)) / rows
            full = logits.detach().double()
            tgt = targets.view(rows, 1)
            base = -full.log_softmax(1).gather(1, tgt)
            terms64 = gates.detach().double().unsqueeze(-1) * slots.detach().double()
            without = full.unsqueeze(1) - terms64 @ a_.double().t()
            ce = -without.log_softmax(2).gather(2, tgt.view(rows, 1, 1).expand(rows, k, 1)).squeeze(-1)
            benefit = torch.zeros(self.peers, dtype=torch.float64).index_add_(0, flat, (ce - base).reshape(-1)) / rows
        phases.lap("scores")

        self.opt.zero_grad()
        total.backward()
        phases.lap("backward")
        self.opt.step()
        phases.lap("optimizer")
        grads = {j: responses[j].grad for j in chosen}
        phases.lap("grads")

        own_d = own.detach()
        teacher = logits.detach().log_softmax(1)
        first = None
        frozen = (p["own_w"].detach(), p["own_b"].detach(), self.mixing().detach())
        for _ in range(self.student_steps):
            dist = self.encode("student.", inputs).reshape(rows, d)
            student = (own_d @ frozen[0].t() + frozen[1] + dist @ frozen[2].t()).log_softmax(1)
            kl = (teacher.exp() * (teacher - student)).sum(1).mean()
            self.student_opt.zero_grad()
            kl.backward()
            self.student_opt.step()
            if first is None:
                first = kl.item()
        phases.lap("student")
        return cross_entropy.item(), first, fisher, benefit, grads


def batches(fixture):
    n = sum(1 for k in fixture if k.startswith("batch."))
    return [(fixture[f"batch.{i}"], fixture[f"eps.{i}"], fixture[f"answers.{i}"]) for i in range(n)]


def check(fixture_path, out_path):
    """Every batch once, in order; the results under the names of `deepnode_torch::baseline`."""
    torch.set_num_threads(1)
    fixture = read_safetensors(fixture_path)
    model = Step(fixture)
    out = {}
    for i, (batch, eps, answers) in enumerate(batches(fixture)):
        loss, distill, fisher, benefit, grads = model.step(batch, eps, answers, Phases())
        out[f"loss.{i}"] = torch.tensor(loss, dtype=torch.float64)
        out[f"distill.{i}"] = torch.tensor(distill, dtype=torch.float64)
        out[f"fisher.{i}"] = fisher
        out[f"benefit.{i}"] = benefit
        peer_grads = torch.zeros_like(answers)
        for j, g in grads.items():
            peer_grads[j] = g
        out[f"peer_grads.{i}"] = peer_grads
        for name, v in model.params.items():
            if not name.startswith("student.") and v.grad is not None:
                out[f"grad.{i}.{name}"] = v.grad
    for name, v in model.params.items():
        out[f"final.{name}"] = v
    out["final.readout_e"] = model.readout_e
    write_safetensors(out, out_path)


def serve(fixture_path):
    """Prints `ready`, then for each line `STEPS THREADS` on stdin runs that many steps (cycling
    through the batches, the model carrying on) on that many threads and prints one line
    `total=SECONDS route=SECONDS ...` (the phases of `Phases`); stops at end of input."""
    fixture = read_safetensors(fixture_path)
    model = Step(fixture)
    data = batches(fixture)
    done = 0
    print("ready", flush=True)
    for line in sys.stdin:
        steps, threads = (int(v) for v in line.split())
        torch.set_num_threads(threads)
        phases = Phases()
        start = time.perf_counter()
        for _ in range(steps):
            batch, eps, answers = data[done % len(data)]
            model.step(batch, eps, answers, phases)
            done += 1
        total = time.perf_counter() - start
        parts = " ".join(f"{n}={v:.9f}" for n, v in phases.total.items())
        print(f"total={total:.9f} {parts}", flush=True)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit("usage: pytorch_step.py check FIXTURE OUT | serve FIXTURE")


if __name__ == "__main__":
    main()
