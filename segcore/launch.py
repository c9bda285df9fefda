"""`python -m segcore.launch --workers N -- COMMAND...`: N local training workers.

Starts N copies of COMMAND (e.g. ``python -m fcn_tf.train --preset smoke``) on this
machine, each with a ``TF_CONFIG`` naming all N on free 127.0.0.1 ports and its own
task index (worker 0 is the chief), streams their output prefixed ``[worker i]``,
and returns 0 when all succeed, else the first failure's status (128 + signal when
a worker was killed). When one worker fails, the others get ``--grace`` seconds to
notice (they exit with a message naming the lost worker) and are then stopped
(SIGTERM, then SIGKILL).

It is for trying and testing multi-worker training on one machine; on a cluster
the scheduler (Kubernetes, Slurm, Ray) starts one worker per host and sets each
one's TF_CONFIG (README, "Training on several machines").
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"


def free_ports(count, host=HOST):
    """`count` distinct TCP ports free on `host` now (the OS picks them)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(addresses):
    """The TF_CONFIG (JSON text) of each worker of a cluster of `addresses`."""
    return [json.dumps({"cluster": {"worker": list(addresses)},
                        "task": {"type": "worker", "index": index}})
            for index in range(len(addresses))]


def describe_status(code):
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Launch:
    def __init__(self, command, workers, grace=60.0, out=sys.stdout):
        self.command, self.workers, self.grace, self.out = command, workers, grace, out
        self.lock = threading.Lock()
        self.processes, self.readers = [], []

    def say(self, text):
        with self.lock:
            self.out.write(f"[launch] {text}\n")
            self.out.flush()

    def _stream(self, index, stream):
        for line in iter(stream.readline, ""):
            with self.lock:
                self.out.write(f"[worker {index}] "
                               f"{line if line.endswith(chr(10)) else line + chr(10)}")
                self.out.flush()
        stream.close()

    def start(self):
        addresses = [f"{HOST}:{port}" for port in free_ports(self.workers)]
        for index, config in enumerate(tf_configs(addresses)):
            env = dict(os.environ, TF_CONFIG=config, PYTHONUNBUFFERED="1")
            process = subprocess.Popen(self.command, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, errors="replace",
                                       start_new_session=True)
            self.processes.append(process)
            reader = threading.Thread(target=self._stream, args=(index, process.stdout),
                                      daemon=True)
            reader.start()
            self.readers.append(reader)
            self.say(f"worker {index}{' (chief)' if index == 0 else ''}: pid {process.pid}, "
                     f"{addresses[index]}")

    def _signal(self, process, sig):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, why, sig=signal.SIGTERM, wait=10.0):
        running = [p for p in self.processes if p.poll() is None]
        if running:
            self.say("stopping worker(s) "
                     f"{', '.join(str(self.processes.index(p)) for p in running)}: {why}")
        for process in running:
            self._signal(process, sig)
        deadline = time.monotonic() + wait
        for process in running:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self._signal(process, signal.SIGKILL)
                process.wait()

    def wait(self):
        """Exit status of the launch (see the module docstring)."""
        failed, failed_at = None, None
        while True:
            codes = [p.poll() for p in self.processes]
            for index, code in enumerate(codes):
                if code not in (None, 0) and failed is None:
                    failed, failed_at = index, time.monotonic()
                    self.say(f"worker {index} {describe_status(code)}; giving the others "
                             f"{self.grace:.0f} s to stop")
            if all(code is not None for code in codes):
                break
            if failed is not None and time.monotonic() - failed_at > self.grace:
                self.stop(f"worker {failed} failed {self.grace:.0f} s ago")
                break
            time.sleep(0.1)
        for reader in self.readers:
            reader.join(timeout=5)
        codes = [p.wait() for p in self.processes]
        for index, code in enumerate(codes):
            if code:
                self.say(f"worker {index} {describe_status(code)}")
        if failed is None:
            failed = next((i for i, code in enumerate(codes) if code), None)
        if failed is None:
            self.say(f"all {self.workers} workers finished")
            return 0
        code = codes[failed]
        return 128 - code if code < 0 else code


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m segcore.launch", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="python -m segcore.launch --workers N [--grace S] -- COMMAND...")
    parser.add_argument("--workers", type=int, required=True,
                        help="number of worker processes (>= 1)")
    parser.add_argument("--grace", type=float, default=60.0,
                        help="seconds the others get to exit by themselves once one fails "
                        "(default 60)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the training command")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if not command:
        parser.error("no command: put the training command after --")
    if args.grace <= 0:
        parser.error(f"--grace must be > 0, got {args.grace}")
    launch = Launch(command, args.workers, args.grace)

    def forward(signum, frame):
        launch.stop(f"the launcher got {signal.Signals(signum).name}")
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        launch.start()
    except OSError as error:
        launch.stop("a worker could not start")
        print(f"python -m segcore.launch: error: cannot run {command[0]!r}: {error}",
              file=sys.stderr)
        return 2
    return launch.wait()


if __name__ == "__main__":
    sys.exit(main())
