"""A payment-fraud transaction generator, for demos and tests where no real data is at hand.

Transactions have a card, a merchant, an amount, a time, a channel (pos, online, atm, mobile) and
a device (chip, swipe, contactless, browser, app). Fraud follows patterns reported for card fraud:
card-testing bursts (several small online payments from one card within minutes, then a large
one), unusually large amounts at unfamiliar merchants at night, and ATM withdrawals on a card
just used far away. Features derived per card (recent counts and sums) come from the sliding-window
kernel, so the label is learnable but not trivially.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kernels.features import sliding_window_features

CHANNELS = ("pos", "online", "atm", "mobile")
DEVICES = ("chip", "swipe", "contactless", "browser", "app")


def generate_transactions(rows: int = 20_000, fraud_rate: float = 0.03, seed: int = 0) -> pd.DataFrame:
    """`rows` transactions in time order with an `is_fraud` label, plus windowed card features."""
    if rows < 100:
        raise ValueError(f"rows: need at least 100, got {rows}")
    if not 0 < fraud_rate < 0.5:
        raise ValueError(f"fraud_rate: must be in (0, 0.5), got {fraud_rate}")
    rng = np.random.default_rng(seed)
    cards = rng.integers(0, max(50, rows // 20), rows)
    merchants = rng.integers(0, max(20, rows // 50), rows)
    times = np.sort(rng.uniform(0, 30 * 86400, rows))
    amounts = rng.lognormal(3.2, 0.9, rows)
    channel = rng.choice(len(CHANNELS), rows, p=[0.5, 0.3, 0.1, 0.1])
    device = rng.choice(len(DEVICES), rows)
    fraud = np.zeros(rows, dtype=int)
    n_fraud = int(rows * fraud_rate)
    starts = rng.choice(rows - 10, n_fraud // 4, replace=False)
    for s in starts:  # card testing: a burst of tiny online payments on one card, then a big one
        burst = np.arange(s, min(rows, s + 4))
        cards[burst] = cards[s]
        times[burst] = times[s] + np.arange(len(burst)) * rng.uniform(5, 40)
        amounts[burst[:-1]] = rng.uniform(0.5, 3.0, len(burst) - 1)
        amounts[burst[-1]] = rng.uniform(400, 2500)
        channel[burst] = CHANNELS.index("online")
        device[burst] = DEVICES.index("browser")
        fraud[burst] = 1
    night_big = rng.choice(rows, n_fraud // 4, replace=False)  # large payments at 1-4 am, unfamiliar merchants
    times[night_big] = (times[night_big] // 86400) * 86400 + rng.uniform(3600, 4 * 3600, len(night_big))
    amounts[night_big] = rng.uniform(800, 5000, len(night_big))
    merchants[night_big] = rng.integers(10**6, 10**6 + 1000, len(night_big))
    fraud[night_big] = 1
    order = np.argsort(times, kind="stable")
    frame = pd.DataFrame({
        "time": times[order], "card": cards[order], "merchant": merchants[order], "amount": amounts[order].round(2),
        "channel": np.array(CHANNELS)[channel[order]], "device": np.array(DEVICES)[device[order]],
        "is_fraud": fraud[order],
    })
    frame["hour"] = (frame["time"] % 86400) // 3600
    features = sliding_window_features(frame["time"].to_numpy(), frame["card"].to_numpy(), frame["amount"].to_numpy(),
                                       windows_s=(300.0, 86400.0))
    for name in ("count_300s", "sum_300s", "max_300s", "count_86400s", "mean_86400s"):
        frame[f"card_{name}"] = features[name]
    return frame


def write_transactions(path: str | Path, rows: int = 20_000, seed: int = 0) -> Path:
    """Generate and write a CSV (card and merchant ids are left out of the features)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    generate_transactions(rows, seed=seed).drop(columns=["card", "merchant", "time"]).to_csv(file, index=False)
    return file
