#!/usr/bin/env python3
"""Tests of scripts/bq_typecheck.py: it must fail on what real BigQuery
refuses (string compared with or written into numeric, unknown tables,
columns and insertAll fields) and pass otherwise.

    python scripts/test_bq_typecheck.py

Needs sqlglot (pinned: 30.11.0) in the running Python.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "bq_typecheck.py")
sys.path.insert(0, HERE)

import bq_typecheck  # noqa: E402

SCHEMAS = {
    "test-project.d.tweets": {
        "status_id": "STRING",
        "user_id": "STRING",
        "status_text": "STRING",
        "created_at": "TIMESTAMP",
    },
    "test-project.d.statuses_texts": {"status_text_id": "INT64", "status_id": "INT64"},
    "test-project.d.status_texts": {
        "status_text_id": "INT64",
        "status_text": "STRING",
        "status_ids": "ARRAY<INT64>",
        "status_count": "INT64",
    },
    "test-project.d.toxicity_scores_original": {
        "status_text_id": "INT64",
        "toxicity": "FLOAT64",
        "checkpoint_sha256": "STRING",
        "scored_at": "TIMESTAMP",
    },
}

# The same tables as toxscore creates them (sql/bigquery): ids are INT64.
TOXSCORE_SCHEMAS = dict(SCHEMAS, **{"test-project.d.tweets": dict(SCHEMAS["test-project.d.tweets"], status_id="INT64", user_id="INT64")})

IDS = [{"name": "ids", "type": "INT64", "array": True}]


def statement(sql, parameters=()):
    return {"sql": sql, "parameters": list(parameters)}


def check(statements=(), inserts=(), schemas=None):
    """The checker's errors and untyped count for a log of these."""
    log = {"schemas": SCHEMAS if schemas is None else schemas, "statements": list(statements), "inserts": list(inserts)}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "log.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump(log, file)
        checker = bq_typecheck.check_log(bq_typecheck.read_log(path))
    return checker.errors, checker.untyped


def run_cli(content):
    """Exit status, stdout and stderr of the script on a log file holding
    `content` (a str, written as is)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "log.json")
        with open(path, "w", encoding="utf-8") as file:
            file.write(content)
        done = subprocess.run([sys.executable, SCRIPT, path], capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


class Case(unittest.TestCase):
    def assert_fails(self, *statements, inserts=(), mentions=(), schemas=None):
        errors, _ = check(statements, inserts, schemas)
        self.assertTrue(errors, f"expected an error for {statements or inserts}")
        for text in mentions:
            self.assertTrue(any(text in error for error in errors), f"no error mentions {text!r}: {errors}")
        return errors

    def assert_passes(self, *statements, inserts=(), schemas=None, typed=True):
        errors, untyped = check(statements, inserts, schemas)
        self.assertEqual(errors, [], f"unexpected errors for {statements or inserts}")
        if typed:
            self.assertEqual(untyped, 0, "some comparison went untyped")


class JoinTest(Case):
    SQL = (
        "SELECT tw.status_id FROM d.tweets AS tw LEFT JOIN d.statuses_texts AS j "
        "ON j.status_id = {left} WHERE j.status_id IS NULL"
    )

    def test_string_joined_with_int64_fails(self):
        errors = self.assert_fails(statement(self.SQL.format(left="tw.status_id")), mentions=("INT64 vs STRING",))
        self.assertTrue(errors[0].startswith("statements[0]: "), errors)
        self.assertIn("status_id", errors[0])

    def test_cast_join_passes(self):
        self.assert_passes(statement(self.SQL.format(left="SAFE_CAST(tw.status_id AS INT64)")))

    def test_subquery_types_flow_through_aliases(self):
        sql = (
            "SELECT j.status_text_id FROM (SELECT {expr} AS status_id, MIN(tw.status_text) AS status_text "
            "FROM d.tweets AS tw GROUP BY 1) AS w JOIN d.statuses_texts AS j ON j.status_id = w.status_id"
        )
        self.assert_passes(statement(sql.format(expr="SAFE_CAST(tw.status_id AS INT64)")))
        self.assert_fails(statement(sql.format(expr="tw.status_id")), mentions=("INT64 vs STRING",))

    def test_cte_types_flow(self):
        sql = (
            "WITH w AS (SELECT status_id FROM d.tweets) "
            "SELECT j.status_text_id FROM w JOIN d.statuses_texts AS j ON j.status_id = w.status_id"
        )
        self.assert_fails(statement(sql), mentions=("INT64 vs STRING",))

    def test_join_using_is_typed(self):
        sql = "SELECT status_id FROM d.tweets AS tw JOIN d.statuses_texts AS j USING (status_id)"
        self.assert_fails(statement(sql))


class ComparisonTest(Case):
    def test_in_unnest_of_int64_parameter(self):
        self.assert_fails(statement("SELECT status_id FROM d.tweets WHERE status_id IN UNNEST(@ids)", IDS), mentions=("STRING vs INT64",))
        self.assert_passes(statement("SELECT status_id FROM d.tweets WHERE SAFE_CAST(status_id AS INT64) IN UNNEST(@ids)", IDS))

    def test_in_unnest_of_array_column(self):
        sql = "SELECT t.status_text_id FROM d.status_texts AS t CROSS JOIN d.tweets AS tw WHERE tw.status_id IN UNNEST(t.status_ids)"
        self.assert_fails(statement(sql), mentions=("STRING vs INT64",))

    def test_in_list_and_subquery(self):
        self.assert_fails(statement("SELECT status_id FROM d.tweets WHERE status_id IN (1, 2)"))
        self.assert_passes(statement("SELECT status_id FROM d.tweets WHERE status_id IN ('1', '2')"))
        self.assert_fails(statement("SELECT status_id FROM d.tweets WHERE status_id IN (SELECT status_id FROM d.statuses_texts)"))
        self.assert_passes(statement("SELECT status_id FROM d.tweets WHERE status_id IN (SELECT status_id FROM d.tweets GROUP BY status_id)"))

    def test_ordering_operators(self):
        for operator in ("<>", "!=", "<", "<=", ">", ">="):
            with self.subTest(operator=operator):
                self.assert_fails(statement(f"SELECT 1 FROM d.tweets WHERE status_id {operator} 5"))
                self.assert_passes(statement(f"SELECT 1 FROM d.tweets WHERE status_id {operator} '5'"))

    def test_string_parameter(self):
        parameters = [{"name": "id", "type": "STRING"}]
        self.assert_passes(statement("SELECT 1 FROM d.tweets WHERE status_id = @id", parameters))
        self.assert_fails(statement("SELECT 1 FROM d.statuses_texts WHERE status_id = @id", parameters))

    def test_undeclared_parameter_fails(self):
        self.assert_fails(statement("SELECT 1 FROM d.tweets WHERE status_id = @id"), mentions=("@id",))

    def test_parameter_name_inside_string_literal_is_text(self):
        self.assert_passes(statement("SELECT 1 FROM d.tweets WHERE status_text = '@nobody'"))

    def test_float_and_string(self):
        self.assert_fails(statement("SELECT 1 FROM d.toxicity_scores_original WHERE toxicity > checkpoint_sha256"), mentions=("FLOAT64 vs STRING",))

    def test_qualify_window_passes(self):
        sql = (
            "SELECT status_text_id, toxicity FROM d.toxicity_scores_original WHERE TRUE "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY status_text_id ORDER BY scored_at DESC NULLS LAST) = 1"
        )
        self.assert_passes(statement(sql))

    def test_compatible_types_pass(self):
        self.assert_passes(
            statement("SELECT 1 FROM d.toxicity_scores_original WHERE toxicity > 0.5 AND status_text_id = 3 AND scored_at IS NOT NULL"),
            statement("SELECT 1 FROM d.tweets WHERE created_at < CURRENT_TIMESTAMP()"),
        )


class InsertTest(Case):
    SQL = "INSERT INTO d.statuses_texts (status_text_id, status_id) SELECT 1, {expr} FROM d.tweets AS tw"

    def test_string_into_int64_fails(self):
        self.assert_fails(statement(self.SQL.format(expr="tw.status_id")), mentions=("INT64 vs STRING",))

    def test_cast_passes(self):
        self.assert_passes(statement(self.SQL.format(expr="SAFE_CAST(tw.status_id AS INT64)")))

    def test_int64_into_string_fails(self):
        sql = "INSERT INTO d.tweets (status_id, user_id, status_text) SELECT status_id, status_id, 'x' FROM d.statuses_texts"
        self.assert_fails(statement(sql), mentions=("STRING vs INT64",))

    def test_values_are_typed(self):
        self.assert_fails(statement("INSERT INTO d.statuses_texts (status_text_id, status_id) VALUES (1, 'a')"))
        self.assert_passes(statement("INSERT INTO d.statuses_texts (status_text_id, status_id) VALUES (1, 2)"))

    def test_unknown_column_fails(self):
        self.assert_fails(statement("INSERT INTO d.statuses_texts (status_text_id, nope) SELECT 1, 2"), mentions=("nope",))

    def test_value_count_must_match(self):
        self.assert_fails(statement("INSERT INTO d.statuses_texts (status_text_id, status_id) SELECT 1"))

    def test_insert_all_fields(self):
        self.assert_fails(inserts=[{"table": "test-project.d.tweets", "fields": ["status_id", "nope"]}], mentions=("inserts[0]", "nope"))
        self.assert_passes(inserts=[{"table": "test-project.d.tweets", "fields": ["status_id", "user_id", "status_text", "created_at"]}])
        self.assert_passes(inserts=[{"table": "d.tweets", "fields": ["status_id"]}])
        self.assert_fails(inserts=[{"table": "test-project.d.nope", "fields": ["status_id"]}], mentions=("d.nope",))


class UpdateMergeTest(Case):
    def test_update_from_subquery_passes_typed(self):
        sql = (
            "UPDATE d.status_texts AS t SET status_count = c.n "
            "FROM (SELECT status_text_id, COUNT(DISTINCT status_id) AS n FROM d.statuses_texts GROUP BY status_text_id) AS c "
            "WHERE t.status_text_id = c.status_text_id AND t.status_count <> c.n"
        )
        self.assert_passes(statement(sql))

    def test_update_where_is_typed(self):
        sql = (
            "UPDATE d.status_texts AS t SET status_count = 0 FROM d.tweets AS tw "
            "WHERE t.status_text_id = tw.status_id"
        )
        self.assert_fails(statement(sql), mentions=("INT64 vs STRING",))

    def test_update_set_is_typed(self):
        self.assert_fails(statement("UPDATE d.status_texts SET status_count = status_text WHERE TRUE"), mentions=("INT64 vs STRING",))
        self.assert_fails(statement("UPDATE d.status_texts SET nope = 1 WHERE TRUE"), mentions=("nope",))

    def test_merge_on_is_typed(self):
        sql = (
            "MERGE d.statuses_texts AS j USING (SELECT status_id FROM d.tweets) AS w ON j.status_id = w.status_id "
            "WHEN NOT MATCHED THEN INSERT (status_text_id, status_id) VALUES (0, {value})"
        )
        self.assert_fails(statement(sql.format(value="SAFE_CAST(w.status_id AS INT64)")), mentions=("INT64 vs STRING",))
        fixed = sql.replace("ON j.status_id = w.status_id", "ON j.status_id = SAFE_CAST(w.status_id AS INT64)")
        self.assert_passes(statement(fixed.format(value="SAFE_CAST(w.status_id AS INT64)")))
        self.assert_fails(statement(fixed.format(value="w.status_id")), mentions=("INT64 vs STRING",))

    def test_delete_where_is_typed(self):
        self.assert_fails(statement("DELETE FROM d.statuses_texts WHERE status_id = 'x'"))
        self.assert_passes(statement("DELETE FROM d.statuses_texts WHERE status_id = 1"))


class TablesTest(Case):
    def test_backticked_full_name_resolves(self):
        self.assert_passes(statement("SELECT * FROM `test-project.d.tweets`"))
        self.assert_passes(statement("SELECT tw.status_id FROM `test-project`.d.tweets AS tw"))

    def test_unknown_table_and_column_fail(self):
        self.assert_fails(statement("SELECT 1 FROM d.nope"), mentions=("d.nope",))
        self.assert_fails(statement("SELECT status_id FROM `other-project.d.tweets`"), mentions=("other-project",))
        self.assert_fails(statement("SELECT nope FROM d.tweets"), mentions=("nope",))
        self.assert_fails(statement("SELECT tw.nope FROM d.tweets AS tw"), mentions=("nope",))

    def test_ambiguous_dataset_table_fails(self):
        schemas = dict(SCHEMAS, **{"other-project.d.tweets": SCHEMAS["test-project.d.tweets"]})
        self.assert_fails(statement("SELECT 1 FROM d.tweets"), schemas=schemas, mentions=("ambiguous",))
        self.assert_passes(statement("SELECT 1 FROM `other-project.d.tweets`"), schemas=schemas)

    def test_ddl_is_skipped(self):
        self.assert_passes(
            statement("CREATE TABLE IF NOT EXISTS d.tweets (status_id STRING NOT NULL, user_id STRING NOT NULL)"),
            statement("ALTER TABLE d.tweets ADD COLUMN IF NOT EXISTS lang STRING"),
            statement("SELECT lang FROM d.tweets WHERE lang = 'en'"),
        )

    def test_created_tables_join_the_schemas(self):
        self.assert_passes(
            statement("CREATE TABLE IF NOT EXISTS d.extra (n INT64)"),
            statement("SELECT n FROM d.extra WHERE n = 1"),
        )
        self.assert_fails(
            statement("CREATE OR REPLACE TABLE d.copy AS SELECT status_id FROM d.tweets"),
            statement("SELECT 1 FROM d.copy AS c JOIN d.statuses_texts AS j ON j.status_id = c.status_id"),
            mentions=("statements[1]", "INT64 vs STRING"),
        )

    def test_unparsable_sql_fails(self):
        self.assert_fails(statement("SELEKT 1 FROM"))


class ToxscoreStatementsTest(Case):
    """toxscore's own BigQuery statements (crates/toxdedup/src/queries.rs)
    against its own schema pass, every comparison typed."""

    UNJOINED = (
        "SELECT tw.status_id, MIN(tw.status_text) AS status_text FROM d.tweets AS tw "
        "LEFT JOIN d.statuses_texts AS j ON j.status_id = tw.status_id WHERE j.status_id IS NULL GROUP BY tw.status_id"
    )
    STATEMENTS = [
        "INSERT INTO d.status_texts (status_text_id, status_text, status_count) "
        "SELECT base.max_id + ROW_NUMBER() OVER (ORDER BY n.first_status_id, n.status_text), n.status_text, 0 FROM ("
        "  SELECT w.status_text, MIN(w.status_id) AS first_status_id FROM (" + UNJOINED + ") AS w"
        "  LEFT JOIN d.status_texts AS t ON t.status_text = w.status_text WHERE t.status_text_id IS NULL GROUP BY w.status_text"
        ") AS n CROSS JOIN (SELECT GREATEST(COALESCE(MAX(status_text_id), 0), 0) AS max_id FROM d.status_texts) AS base",
        "INSERT INTO d.statuses_texts (status_text_id, status_id) SELECT t.status_text_id, w.status_id FROM (" + UNJOINED + ") AS w "
        "JOIN (SELECT status_text, MIN(status_text_id) AS status_text_id FROM d.status_texts GROUP BY status_text) AS t "
        "ON t.status_text = w.status_text",
        "SELECT COUNT(*) - COUNT(DISTINCT status_id) AS conflicts FROM (SELECT DISTINCT status_id, status_text FROM d.tweets)",
        "SELECT t.status_text_id AS status_text_id, t.status_text AS status_text FROM d.status_texts AS t "
        "LEFT JOIN d.toxicity_scores_original AS s ON s.status_text_id = t.status_text_id "
        "WHERE s.status_text_id IS NULL AND t.status_text_id > 41 AND MOD(t.status_text_id, 8) = 2 ORDER BY t.status_text_id LIMIT 500",
        "SELECT j.status_id AS status_id, u.user_id AS user_id, j.status_text_id AS status_text_id, s.toxicity "
        "FROM (SELECT DISTINCT status_id, status_text_id FROM d.statuses_texts) AS j "
        "JOIN (SELECT * FROM d.toxicity_scores_original WHERE TRUE "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY status_text_id ORDER BY scored_at DESC, checkpoint_sha256) = 1) AS s "
        "ON s.status_text_id = j.status_text_id "
        "JOIN (SELECT DISTINCT status_text_id, status_text FROM d.status_texts) AS t ON t.status_text_id = j.status_text_id "
        "JOIN (SELECT status_id, status_text, MIN(user_id) AS user_id FROM d.tweets GROUP BY status_id, status_text) AS u "
        "ON u.status_id = j.status_id AND u.status_text = t.status_text ORDER BY j.status_id",
    ]

    def test_pass_with_int64_ids(self):
        self.assert_passes(*[statement(sql) for sql in self.STATEMENTS], schemas=TOXSCORE_SCHEMAS)

    def test_fail_with_string_ids(self):
        errors, _ = check([statement(sql) for sql in self.STATEMENTS])
        self.assertTrue(any(error.startswith("statements[0]: ") for error in errors), errors)
        self.assertTrue(any(error.startswith("statements[4]: ") for error in errors), errors)


class CommandLineTest(unittest.TestCase):
    def log(self, statements=(), inserts=()):
        return json.dumps({"schemas": SCHEMAS, "statements": list(statements), "inserts": list(inserts)})

    def test_clean_log_exits_0(self):
        code, out, _ = run_cli(self.log([statement("SELECT 1 FROM d.tweets WHERE status_id = '1'")], [{"table": "d.tweets", "fields": ["status_id"]}]))
        self.assertEqual(code, 0, out)
        self.assertEqual(out.strip(), "bq_typecheck: 1 statements, 1 inserts checked, no type errors (0 untyped comparisons)")

    def test_errors_exit_1_one_line_each(self):
        statements = [statement("SELECT 1 FROM d.tweets WHERE status_id = 1"), statement("SELECT 1 FROM d.tweets WHERE status_id = '1'")]
        code, out, _ = run_cli(self.log(statements, [{"table": "d.tweets", "fields": ["nope"]}]))
        self.assertEqual(code, 1, out)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), 2, out)
        self.assertTrue(lines[0].startswith("statements[0]: ") and "STRING vs INT64" in lines[0], lines)
        self.assertTrue(lines[1].startswith("inserts[0]: "), lines)

    def test_unreadable_log_exits_2(self):
        for content in ("not json", "[]", json.dumps({"schemas": {"t": {"a": "INT64"}}}), json.dumps({"statements": [{"no_sql": 1}]})):
            with self.subTest(content=content):
                code, _, err = run_cli(content)
                self.assertEqual(code, 2, err)
        done = subprocess.run([sys.executable, SCRIPT, os.path.join(HERE, "no-such-log.json")], capture_output=True, text=True)
        self.assertEqual(done.returncode, 2)


if __name__ == "__main__":
    unittest.main()
