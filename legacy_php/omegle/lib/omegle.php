<?php
/*
 * Shared code of the "talk to a stranger" endpoints (../public/*.php). This
 * file lives outside the web root.
 *
 * Configuration comes from the environment (or, under php-fpm, from
 * fastcgi_param / env[] in the pool):
 *   CHAT_DB   path of the SQLite database file (required; the schema,
 *             profiles/omegle.schema.sql, is created by `cometa migrate
 *             --profile omegle`, never by this code)
 *
 * Parameters are read from $_REQUEST (php.ini's request_order = "GP", the
 * shipped default: query string, then the form body, the body winning). The
 * page sends everything in the query string of a POST with an empty body.
 *
 * Every answer is status 200 with PHP's default Content-Type
 * (text/html; charset=UTF-8). The page shows any body it gets as an answer,
 * so nothing is ever validated or refused, and a failure (database locked
 * too long, missing CHAT_DB) is logged and answered with an empty body, the
 * one answer every endpoint may give.
 */

declare(strict_types=1);

/** listenToReceive.php's answer once the partner has left. */
const OMEGLE_NO_RESULT = '||--noResult--||';

/** How long a statement waits for another writer's lock, in milliseconds. */
const OMEGLE_BUSY_TIMEOUT_MS = 5000;

/* ------------------------------------------------------------------ */
/* Start-up                                                            */
/* ------------------------------------------------------------------ */

/** First call of every endpoint: errors are logged, never shown. */
function omegle_begin(): void
{
    ini_set('display_errors', '0');
    ini_set('log_errors', '1');

    set_error_handler(static function (int $severity, string $message, string $file, int $line): bool {
        if (!(error_reporting() & $severity)) {
            return false;
        }
        throw new ErrorException($message, 0, $severity, $file, $line);
    });

    // An uncaught failure ends the request with what it has printed so far,
    // which is nothing: every endpoint prints its answer last, in one echo.
    set_exception_handler(static function (Throwable $e): void {
        error_log('omegle: ' . get_class($e) . ': ' . $e->getMessage()
            . ' in ' . $e->getFile() . ':' . $e->getLine());
        if (!headers_sent()) {
            http_response_code(200);
        }
    });

    // A fatal error (time limit, memory) would otherwise give a 500.
    register_shutdown_function(static function (): void {
        $error = error_get_last();
        $fatal = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR;
        if ($error !== null && ($error['type'] & $fatal) && !headers_sent()) {
            http_response_code(200);
        }
    });
}

/* ------------------------------------------------------------------ */
/* Request parameters                                                  */
/* ------------------------------------------------------------------ */

/**
 * An id, read as PHP's (int) cast reads a string: "12abc" is 12, "abc" and
 * "" are 0, " 7" is 7, "1e3" is 1000. Absent, or an array (name[]=...), is 0.
 */
function omegle_int(string $name): int
{
    $value = $_REQUEST[$name] ?? null;

    return is_string($value) ? (int) $value : 0;
}

/**
 * A text parameter exactly as PHP decoded it: not trimmed, not checked.
 * Absent, or an array, is the empty string.
 */
function omegle_text(string $name): string
{
    $value = $_REQUEST[$name] ?? null;

    return is_string($value) ? $value : '';
}

/* ------------------------------------------------------------------ */
/* Database                                                            */
/* ------------------------------------------------------------------ */

/** The connection, opened on first use. */
function omegle_db(): PDO
{
    static $db = null;

    if ($db === null) {
        $path = getenv('CHAT_DB');
        if ($path === false || $path === '') {
            throw new RuntimeException('CHAT_DB is not set');
        }
        // READWRITE without CREATE: a wrong path fails instead of quietly
        // creating an empty database.
        $db = new PDO('sqlite:' . $path, null, null, [
            PDO::ATTR_ERRMODE            => PDO::ERRMODE_EXCEPTION,
            PDO::ATTR_DEFAULT_FETCH_MODE => PDO::FETCH_ASSOC,
            PDO::SQLITE_ATTR_OPEN_FLAGS  => PDO::SQLITE_OPEN_READWRITE,
        ]);
        $db->exec('PRAGMA busy_timeout = ' . OMEGLE_BUSY_TIMEOUT_MS);
    }
    return $db;
}

/**
 * Runs $work in one write transaction and returns its result.
 *
 * BEGIN IMMEDIATE takes the write lock before the first read, so two
 * requests that read-then-write the same rows (two tabs polling one queue,
 * two users picking the same waiting stranger) run one after the other
 * instead of both reading the same row. PDO::beginTransaction() would issue
 * a deferred BEGIN, hence the plain statements.
 */
function omegle_transaction(callable $work)
{
    $db = omegle_db();
    $db->exec('BEGIN IMMEDIATE');
    try {
        $result = $work($db);
        $db->exec('COMMIT');
    } catch (Throwable $e) {
        try {
            $db->exec('ROLLBACK');
        } catch (Throwable $ignored) {
            // The transaction is gone already; report the first failure.
        }
        throw $e;
    }
    return $result;
}

/** Runs one prepared statement with positional parameters. */
function omegle_run(string $sql, array $params = []): PDOStatement
{
    $statement = omegle_db()->prepare($sql);
    $statement->execute($params);

    return $statement;
}
