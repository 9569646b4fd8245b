def pytest_configure(config):
    # Also declared in pyproject.toml; registering here keeps `-m e2e` warning-free without it.
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end tests on real Debian roots (debootstrap, apt, pip, torch); slow, need root and network",
    )
    config.addinivalue_line(
        "markers",
        "arm64: the end-to-end test on a Debian 13 arm64 root under qemu-user; slow, run by scripts/test --arch arm64",
    )
