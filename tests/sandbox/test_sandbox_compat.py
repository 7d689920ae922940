"""What isolation must not break: ordinary handler code still runs."""

from __future__ import annotations

import sandbox_probe


def test_threads_subprocesses_tls_and_identity_work(backend, python, code_dir):
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
import concurrent.futures, getpass, platform, socket, ssl, subprocess, tempfile, threading
seen = []
t = threading.Thread(target=lambda: seen.append(1))  # clone3 -> ENOSYS -> clone
t.start(); t.join()
with concurrent.futures.ThreadPoolExecutor(4) as ex:
    doubled = list(ex.map(lambda x: x * 2, range(4)))
sh = subprocess.run(['sh', '-c', 'echo hi; id -un'], capture_output=True, text=True).stdout
srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()
cli = socket.create_connection(srv.getsockname()); conn, _ = srv.accept(); cli.sendall(b'x')
report(thread=seen, pool=doubled, sh=sh, loopback=conn.recv(1).decode(),
       ca_certs=ssl.create_default_context().cert_store_stats()['x509_ca'] > 0,
       user=getpass.getuser(), tmp=tempfile.gettempdir(), cwd=os.getcwd(), host=platform.node(),
       env={k: os.environ.get(k) for k in ('LAMBDA_TASK_ROOT', 'LAMBDA_RUNTIME_DIR')},
       https_port=socket.getaddrinfo('127.0.0.1', 'https')[0][4][1])
""",
    )
    assert outcome.last == {
        "thread": [1],
        "pool": [0, 2, 4, 6],
        "sh": "hi\nsbx_user1051\n",
        "loopback": "x",
        "ca_certs": True,
        "user": "sbx_user1051",
        "tmp": "/tmp",
        "cwd": "/var/task",
        "host": "lambdalet",
        "env": {"LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime"},
        "https_port": 443,
    }
