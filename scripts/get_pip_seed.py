"""Stand-in for ansible-test's get-pip bootstrap script, which it downloads from a host this
workplace cannot reach. ansible-test runs it inside a fresh virtual environment with pip options
and `pip==<version>`; we bring pip in with ensurepip and let it install the pinned pip from the
package index. Seeded to ~/.ansible/test/cache/get_pip_<ver>.py by `make seed-ansible-test`."""
import subprocess
import sys

# get-pip.py's own flags, which pip install does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
