-- A run history as stepframe-core wrote it at schema version 3 (before issue 12's review
-- added jobs.timed_out_after and steps.upstream): `sqlite3.Connection.iterdump()` of the
-- runs.db of one run of a three-step pipeline (first -> middle on the local operator ->
-- last), recorded by the code of commit 901e7d7.  test_history_v4.py builds the file
-- from it and opens it with today's code.
BEGIN TRANSACTION;
CREATE TABLE artifacts (
            run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step         TEXT NOT NULL,
            output       TEXT NOT NULL,
            uri          TEXT NOT NULL,
            sha256       TEXT NOT NULL,
            size         INTEGER NOT NULL,
            materializer TEXT NOT NULL,
            type_name    TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, step, output)
        );
INSERT INTO "artifacts" VALUES('20261206-084936-3d0c58','first','output','file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/first/attempt-1/outputs/output','f5ca38f748a1d6eaf726b8a42fb575c3c71f1864a8143301782de13da2d9202b',2,'json','int');
INSERT INTO "artifacts" VALUES('20261206-084936-3d0c58','middle','output','file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/middle/attempt-1/outputs/output','6f4b6612125fb3a0daecd2799dfd6c9c299424fd920f9b308110a2c1fbd8f443',2,'json','int');
INSERT INTO "artifacts" VALUES('20261206-084936-3d0c58','last','output','file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/last/attempt-1/outputs/output','73475cb40a568e8da8a045ced110137e159f890ac4da883b6b17dc651b3a8049',2,'json','int');
CREATE TABLE "jobs" (
            id           INTEGER PRIMARY KEY,
            run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step         TEXT NOT NULL,
            attempt      INTEGER NOT NULL,
            flavor       TEXT NOT NULL,
            operator     TEXT NOT NULL,
            job_id       TEXT,
            handle       TEXT,
            state        TEXT NOT NULL
                         CHECK (state IN ('submitting', 'possibly-submitted', 'unknown',
                                          'pending', 'running', 'succeeded', 'failed',
                                          'cancelled')),
            created_at   REAL NOT NULL,
            updated_at   REAL NOT NULL,
            image_digest TEXT,
            region       TEXT,
            launch       TEXT,
            note         TEXT
        );
INSERT INTO "jobs" VALUES(1,'20261206-084936-3d0c58','first',1,'inprocess','inprocess','inprocess-recorded-first-20261206-084936-3d0c58-1-6cc24c27','{"data": {}, "flavor": "inprocess", "job_id": "inprocess-recorded-first-20261206-084936-3d0c58-1-6cc24c27", "operator": "inprocess"}','succeeded',1.7965469769029619694e+09,1.79654697722154784202e+09,NULL,NULL,'{"attempt": 1, "code_root": "/tmp/v3proj", "command": ["python", "-m", "stepframe.entrypoint", "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/first/attempt-1/launch.json"], "environment": {"STEPFRAME_LAUNCH_MANIFEST": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/first/attempt-1/launch.json"}, "image": null, "job_name": "recorded-first-20261206-084936-3d0c58-1", "manifest_uri": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/first/attempt-1/launch.json", "pipeline": "recorded", "result_uri": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/first/attempt-1/result.json", "run_id": "20261206-084936-3d0c58", "settings": {}, "step": "first", "workdir": "/tmp/v3proj/.stepframe/jobs"}',NULL);
INSERT INTO "jobs" VALUES(2,'20261206-084936-3d0c58','middle',1,'local','local','19657','{"data": {"log": "/tmp/v3proj/.stepframe/jobs/recorded-middle-20261206-084936-3d0c58-1.log", "pid": 19657, "start_ticks": "1349659", "zygote": 19653, "zygote_ticks": "1349604"}, "flavor": "local", "job_id": "19657", "operator": "local"}','succeeded',1.79654697723515462872e+09,1.79654697789269971854e+09,NULL,NULL,'{"attempt": 1, "code_root": "/tmp/v3proj", "command": ["python", "-m", "stepframe.entrypoint", "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/middle/attempt-1/launch.json"], "environment": {"STEPFRAME_LAUNCH_MANIFEST": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/middle/attempt-1/launch.json"}, "image": null, "job_name": "recorded-middle-20261206-084936-3d0c58-1", "manifest_uri": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/middle/attempt-1/launch.json", "pipeline": "recorded", "result_uri": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/middle/attempt-1/result.json", "run_id": "20261206-084936-3d0c58", "settings": {"environment": {}, "fresh_interpreter": false}, "step": "middle", "workdir": "/tmp/v3proj/.stepframe/jobs"}',NULL);
INSERT INTO "jobs" VALUES(3,'20261206-084936-3d0c58','last',1,'inprocess','inprocess','inprocess-recorded-last-20261206-084936-3d0c58-1-42e50f6e','{"data": {}, "flavor": "inprocess", "job_id": "inprocess-recorded-last-20261206-084936-3d0c58-1-42e50f6e", "operator": "inprocess"}','succeeded',1.79654697791307830807e+09,1.79654697796946549413e+09,NULL,NULL,'{"attempt": 1, "code_root": "/tmp/v3proj", "command": ["python", "-m", "stepframe.entrypoint", "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/last/attempt-1/launch.json"], "environment": {"STEPFRAME_LAUNCH_MANIFEST": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/last/attempt-1/launch.json"}, "image": null, "job_name": "recorded-last-20261206-084936-3d0c58-1", "manifest_uri": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/last/attempt-1/launch.json", "pipeline": "recorded", "result_uri": "file:///tmp/v3proj/.stepframe/artifacts/runs/20261206-084936-3d0c58/last/attempt-1/result.json", "run_id": "20261206-084936-3d0c58", "settings": {}, "step": "last", "workdir": "/tmp/v3proj/.stepframe/jobs"}',NULL);
CREATE TABLE runs (
            run_id       TEXT PRIMARY KEY,
            pipeline     TEXT NOT NULL,
            status       TEXT NOT NULL
                         CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
            started_at   REAL NOT NULL,
            ended_at     REAL,
            pid          INTEGER NOT NULL,
            hostname     TEXT NOT NULL,
            project_root TEXT NOT NULL,
            error        TEXT,
            params       TEXT NOT NULL DEFAULT '{}',
            source       TEXT
        , stack TEXT, run_settings TEXT, pid_started TEXT);
INSERT INTO "runs" VALUES('20261206-084936-3d0c58','recorded','succeeded',1.7965469768391838074e+09,1.79654697797048568726e+09,19622,'vm','/tmp/v3proj',NULL,'{}','/tmp/v3proj/pipeline.py','default',NULL,'1349448');
CREATE TABLE steps (
            run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
            step       TEXT NOT NULL,
            status     TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'running', 'succeeded', 'failed',
                                         'skipped', 'cancelled', 'cached')),
            operator   TEXT,
            flavor     TEXT,
            job_id     TEXT,
            attempt    INTEGER NOT NULL DEFAULT 0,
            started_at REAL,
            ended_at   REAL,
            error      TEXT,
            cache_key  TEXT,
            PRIMARY KEY (run_id, step)
        );
INSERT INTO "steps" VALUES('20261206-084936-3d0c58','first','succeeded','inprocess','inprocess','inprocess-recorded-first-20261206-084936-3d0c58-1-6cc24c27',1,1.79654697684241819377e+09,1.79654697722320890428e+09,NULL,'24ba0f6cc4a3b2fa03612afb5ad969876aa5a78d83ce7ef5b5960b61dc8b2b70');
INSERT INTO "steps" VALUES('20261206-084936-3d0c58','middle','succeeded','local','local','19657',1,1.79654697722537064555e+09,1.79654697789369320864e+09,NULL,'104bd4cbcd789980983fba4fbf6a886f2b34ad87425397a8e816340d906e267b');
INSERT INTO "steps" VALUES('20261206-084936-3d0c58','last','succeeded','inprocess','inprocess','inprocess-recorded-last-20261206-084936-3d0c58-1-42e50f6e',1,1.79654697789558529851e+09,1.7965469779702765941e+09,NULL,'4c808fa075d3840e4688e594f4e4a27cb05fc1a6253f58b087bf497653535c38');
CREATE INDEX runs_started_at ON runs (started_at);
CREATE INDEX steps_cache_key ON steps (cache_key);
CREATE INDEX jobs_run_step ON jobs (run_id, step);
CREATE INDEX jobs_flavor_job_id ON jobs (flavor, job_id);
CREATE INDEX jobs_state ON jobs (state);
COMMIT;
PRAGMA user_version = 3;
