def pytest_configure(config):
    # Also declared in pyproject.toml; registering here keeps `-m e2e` warning-free without it.
    config.addinivalue_line(
        "markers",
        "e2e: end-to-end tests on real Debian roots (debootstrap, apt, pip, torch); slow, need root and network",
    )
