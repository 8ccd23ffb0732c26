"""Storage URLs are printed without their password, whatever their form; no database needed."""

from __future__ import annotations

import pytest

from hposweep.study.storage import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://hpo:s3cret@db-host:5432/hpo", "postgresql://hpo:***@db-host:5432/hpo"),
    ("postgresql+psycopg://hpo:p%40ss%3Aw0rd@db-host/hpo", "postgresql+psycopg://hpo:***@db-host/hpo"),
    ("mysql+pymysql://hpo@db-host/hpo", "mysql+pymysql://hpo@db-host/hpo"),
    ("postgresql://hpo@db-host/hpo?password=s3cret&sslmode=require",
     "postgresql://hpo@db-host/hpo?sslmode=require"),  # libpq takes a password here too
    ("sqlite:////work/outputs/hpo/s/study.db", "sqlite:////work/outputs/hpo/s/study.db"),
    ("journal:outputs/hpo/study.log", "journal:outputs/hpo/study.log"),
    ("journal+redis://:s3cret@redis-host:6379/0", "journal+redis://:***@redis-host:6379/0"),
    ("journal+redis://redis-host:6379", "journal+redis://redis-host:6379"),
])
def test_password_is_hidden_and_the_rest_kept(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://hpo:s3cret@db-host:notaport/hpo", "postgresql://***"),  # make_url refuses
    ("postgresql://hpo:s3@cret@db-host/hpo", "postgresql://***"),  # an unquoted @ in the password
    ("journal+redis://:s3cret@redis-host:63x79/0", "journal+redis://***"),
    ("hpo:s3cret@db-host", "***"),  # no scheme
])
def test_an_unparsable_url_shows_no_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_no_storage_is_memory() -> None:
    assert redact_url(None) == "memory"
