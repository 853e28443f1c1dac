"""ClientApp: one data holder's training, next to its private partition.

Each holder runs Opacus DP-SGD on its own rows (per-record DP), with noise set so that all
the run's rounds together stay within the job's target ε; the accountant history of earlier
rounds lives in the node's Flower context, with the noise multiplier worked out in the first
round. Flower's mods clip the update (fixedclipping_mod, for the strategy's client-side DP) and
mask it (secaggplus_mod) before it leaves the node.

Every message runs in a process of its own (at a district node, forked from the node's warm
launcher, `sandbox.federated.launcher`, which has imported torch and Opacus already), and every
exchange costs the round a trip through the SuperLink: a round's fit also scores the global
model it receives on the holder's held-out rows (the previous round's metric), and only the
last round has an evaluate stage of its own. The holder's encoded rows are kept between rounds
(`tasks.partition_split`).
"""
from __future__ import annotations

from flwr.app import Context
from flwr.client import NumPyClient
from flwr.client.mod import fixedclipping_mod, secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import ConfigRecord

# torch is imported inside the client: SecAgg+'s key-exchange stages never reach it (and
# under Flower's own subprocess isolation, every message is a fresh interpreter).

HISTORY = "miliao-privacy"


class HolderClient(NumPyClient):
    def __init__(self, context: Context):
        import json
        from pathlib import Path

        from sandbox import tasks

        self.context = context
        rc = context.run_config
        if "partitions" in context.node_config:  # a district node: its own partition of the run's dataset
            data = Path(str(context.node_config["partitions"])) / str(rc["dataset"])
        else:  # a LocalDeployment's node, pointed at one partition folder
            data = Path(str(context.node_config["data-path"]))
        self.task = tasks.task_named(str(rc["task"]))
        # The holder's raw rows, encoded here with the job's vocabulary: every holder encodes
        # the same way, and holds out the same rooms (by unit id) as the platform does.
        self.train, self.test = tasks.partition_split(data, self.task, json.loads(str(rc["neighbourhoods"])),
                                                      salt=str(rc["holdout-salt"]))
        self.node = str(context.node_config.get("node-name", data.name))

    def _spec(self):
        import secrets

        from sandbox.training import TrainSpec

        rc = self.context.run_config
        # A fresh secret seed each round: DP-SGD's accounting composes the rounds as
        # independent mechanisms, and a fixed seed would draw the same batches and noise in each.
        return TrainSpec(seed=secrets.randbits(31), epochs=int(rc["local-epochs"]), batch_size=int(rc["batch-size"]),
                         learning_rate=float(rc["learning-rate"]), private=bool(rc["local-dp"]),
                         target_epsilon=float(rc["target-epsilon"]), delta=float(rc["delta"]),
                         max_grad_norm=float(rc["max-grad-norm"]), accountant=str(rc["accountant"]),
                         hidden=int(rc["hidden"]))

    def _model(self, parameters):
        from sandbox import training
        from miliao_fl.weights import state_from

        return state_from(training.build_model(self.task, self.train.x.shape[1], int(self.context.run_config["hidden"])),
                          parameters)

    def fit(self, parameters, config):
        import json
        import time

        from sandbox import training
        from miliao_fl.weights import arrays_of

        rc = self.context.run_config
        spec = self._spec()
        record = self.context.state.config_records.get(HISTORY, ConfigRecord({"history": "[]"}))
        prior = json.loads(str(record["history"]))
        received = self._model(parameters)
        model = training.build_model(self.task, self.train.x.shape[1], int(rc["hidden"]))
        model.load_state_dict(received)
        before = training.evaluate(self.task, model, self.test)
        started = time.perf_counter()
        result = training.fit(self.task, spec, self.train, self.test, state=received,
                              schedule_epochs=int(rc["num-server-rounds"]) * spec.epochs if spec.private else None,
                              prior=prior, noise_multiplier=record.get("noise_multiplier"))
        seconds = time.perf_counter() - started
        metrics = {"loss": float(result.history[-1]["loss"]), "node": self.node, "device": training.device_name(),
                   "rows_per_s": float(len(self.train) * spec.epochs / max(seconds, 1e-9)),
                   **{f"received_{k}": v for k, v in before.items()}}
        if spec.private:
            self.context.state.config_records[HISTORY] = ConfigRecord(
                {"history": json.dumps(result.privacy["history"]),
                 "noise_multiplier": float(result.privacy["noise_multiplier"])})
            metrics.update(epsilon=float(result.privacy["epsilon"]),
                           noise_multiplier=float(result.privacy["noise_multiplier"]),
                           sample_rate=float(result.privacy["sample_rate"]), steps=int(result.privacy["steps"]))
        return arrays_of(result.state), len(self.train), metrics

    def evaluate(self, parameters, config):
        from sandbox import training

        model = training.build_model(self.task, self.train.x.shape[1], int(self.context.run_config["hidden"]))
        model.load_state_dict(self._model(parameters))
        metrics = training.evaluate(self.task, model, self.test)
        loss = metrics.get("rmse", 1.0 - metrics.get("accuracy", 0.0))
        return float(loss), len(self.test), {**metrics, "node": self.node}


def client_fn(context: Context):
    return HolderClient(context).to_client()


def secagg_if_configured(message, context, call_next):
    """secaggplus_mod for runs aggregated under SecAgg+ (run config `secagg`); other runs'
    messages carry no SecAgg+ stage, which the mod refuses."""
    if bool(context.run_config.get("secagg", True)):
        return secaggplus_mod(message, context, call_next)
    return call_next(message, context)


# SecAgg+ outermost: it answers its own stages and masks what the inner chain returns;
# fixedclipping_mod inside it, so the update is clipped before it is masked.
app = ClientApp(client_fn=client_fn, mods=[secagg_if_configured, fixedclipping_mod])
