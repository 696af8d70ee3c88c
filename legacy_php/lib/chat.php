<?php
/*
 * Shared code of the chat endpoints. This file lives outside the web root;
 * the scripts in ../public/ include it.
 *
 * Configuration comes from the environment (or, under php-fpm, from
 * fastcgi_param / env[] in the pool):
 *   CHAT_DB    path of the SQLite database file (required; the schema is
 *              created by `cometa migrate`, never by this code)
 *   CHAT_HOLD  how long listenToRecive.php holds a quiet poll, in seconds,
 *              fractions allowed (default 25)
 *
 * Parameters are read from $_REQUEST, which relies on php.ini's
 * request_order = "GP" (the shipped default): query string, then the
 * urlencoded body, the body winning.
 */

declare(strict_types=1);

const CHAT_DEFAULT_ROOM  = 'main';
const CHAT_USER_MAX      = 32;      // code points
const CHAT_MESSAGE_MAX   = 1000;    // code points
const CHAT_HISTORY       = 50;      // messages sent for lastId = 0
const CHAT_BATCH         = 100;     // most messages sent for lastId > 0
const CHAT_PRESENCE_MS   = 30000;   // a user is online this long after being seen
const CHAT_TYPING_MS     = 5000;    // a typing flag lapses this long after being set
const CHAT_POLL_US       = 250000;  // how often a held poll looks at the database
const CHAT_DEFAULT_HOLD  = 25.0;    // seconds; must stay below the client's 40 s timeout
const CHAT_MAX_BODY      = 65536;   // bytes

/* ------------------------------------------------------------------ */
/* Start-up and output                                                 */
/* ------------------------------------------------------------------ */

/**
 * First call of every endpoint: error handling, then the checks that come
 * before any parameter is looked at (method, body size).
 */
function chat_begin(): void
{
    // Never let a PHP message end up in a JSON body: log it instead.
    ini_set('display_errors', '0');
    ini_set('log_errors', '1');

    set_error_handler(static function (int $severity, string $message, string $file, int $line): bool {
        if (!(error_reporting() & $severity)) {
            return false;
        }
        throw new ErrorException($message, 0, $severity, $file, $line);
    });

    set_exception_handler(static function (Throwable $e): void {
        error_log('chat: ' . get_class($e) . ': ' . $e->getMessage()
            . ' in ' . $e->getFile() . ':' . $e->getLine());
        if (!headers_sent()) {
            chat_send_error(500, 'internal error');
        }
    });

    // Fatal errors (time limit, memory) bypass both handlers above.
    register_shutdown_function(static function (): void {
        $error = error_get_last();
        $fatal = E_ERROR | E_PARSE | E_CORE_ERROR | E_COMPILE_ERROR | E_USER_ERROR;
        if ($error !== null && ($error['type'] & $fatal) && !headers_sent()) {
            chat_send_error(500, 'internal error');
        }
    });

    $method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
    if ($method !== 'GET' && $method !== 'POST') {
        header('Allow: GET, POST');
        chat_fail(405, 'method not allowed');
    }

    if ((int) ($_SERVER['CONTENT_LENGTH'] ?? 0) > CHAT_MAX_BODY) {
        chat_fail(413, 'request body too large');
    }
}

/** Sends $data as JSON (json_encode's default flags). */
function chat_json($data, int $status = 200): void
{
    $body = json_encode($data);
    if ($body === false) {
        throw new RuntimeException('json_encode failed: ' . json_last_error_msg());
    }
    http_response_code($status);
    header('Content-Type: application/json');
    echo $body;
}

function chat_send_error(int $status, string $reason): void
{
    chat_json(['status' => 'error', 'error' => $reason], $status);
}

/** Answers with an error and ends the request. */
function chat_fail(int $status, string $reason): never
{
    chat_send_error($status, $reason);
    exit;
}

/** Escapes text for the front end, which inserts it as HTML. */
function chat_html(string $s): string
{
    return htmlspecialchars($s, ENT_QUOTES, 'UTF-8');
}

/* ------------------------------------------------------------------ */
/* Request parameters                                                  */
/* ------------------------------------------------------------------ */

/**
 * The request's parameters. PHP also fills $_POST (and so $_REQUEST) from a
 * multipart/form-data body; this app only ever takes an urlencoded body, so
 * for anything else only the query string counts.
 */
function chat_params(): array
{
    // PHP picks its body parser by the media type, lower-cased and cut at
    // the first ';', ',' or space; do the same.
    $type = (string) ($_SERVER['CONTENT_TYPE'] ?? '');
    $type = strtolower((string) preg_replace('/[;, ].*\z/s', '', $type));

    return $type === 'application/x-www-form-urlencoded' ? $_REQUEST : $_GET;
}

/**
 * A text parameter, trimmed; null when it is absent. An array (name[]=...)
 * is refused.
 */
function chat_text_param(string $name): ?string
{
    $params = chat_params();
    if (!array_key_exists($name, $params)) {
        return null;
    }
    if (!is_string($params[$name])) {
        chat_fail(400, "invalid $name");
    }
    return trim($params[$name]);
}

/**
 * An integer parameter read the way (int) reads a string ("12abc" is 12,
 * "abc" is 0); null when it is absent.
 */
function chat_int_param(string $name): ?int
{
    $value = chat_text_param($name);
    if ($value === null) {
        return null;
    }
    if (!mb_check_encoding($value, 'UTF-8')) {
        chat_fail(400, "invalid $name");
    }
    return (int) $value;
}

/** `room`: absent means "main"; otherwise 1-64 of A-Z a-z 0-9 _ -. */
function chat_room(): string
{
    $room = chat_text_param('room');
    if ($room === null) {
        return CHAT_DEFAULT_ROOM;
    }
    if (!preg_match('/\A[A-Za-z0-9_-]{1,64}\z/', $room)) {
        chat_fail(400, 'invalid room');
    }
    return $room;
}

/**
 * A required text parameter of at most $max code points, valid UTF-8.
 * With $required false, an absent or empty value gives null.
 */
function chat_text(string $name, int $max, bool $required = true): ?string
{
    $value = chat_text_param($name);
    if ($value === null || $value === '') {
        if ($required) {
            chat_fail(400, "missing $name");
        }
        return null;
    }
    if (!mb_check_encoding($value, 'UTF-8')) {
        chat_fail(400, "invalid $name");
    }
    if (mb_strlen($value, 'UTF-8') > $max) {
        chat_fail(400, "$name too long");
    }
    return $value;
}

function chat_user(bool $required = true): ?string
{
    return chat_text('user', CHAT_USER_MAX, $required);
}

function chat_message(): string
{
    return chat_text('message', CHAT_MESSAGE_MAX);
}

/** `lastId`: absent or not above 0 means 0 (send the history). */
function chat_last_id(): int
{
    return max(0, chat_int_param('lastId') ?? 0);
}

/** `typing`: null (absent, leave the flag), 1 (set it) or 0 (clear it). */
function chat_typing(): ?int
{
    $typing = chat_int_param('typing');
    if ($typing !== null && $typing !== 0 && $typing !== 1) {
        chat_fail(400, 'invalid typing');
    }
    return $typing;
}

/* ------------------------------------------------------------------ */
/* Configuration and database                                          */
/* ------------------------------------------------------------------ */

/** Seconds a quiet poll is held (CHAT_HOLD, default 25). */
function chat_hold(): float
{
    $hold = getenv('CHAT_HOLD');
    if ($hold === false || !is_numeric($hold)) {
        return CHAT_DEFAULT_HOLD;
    }
    return max(0.0, (float) $hold);
}

/** The connection, opened on first use. */
function chat_db(): PDO
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
        $db->exec('PRAGMA busy_timeout = 5000');
    }
    return $db;
}

/** Unix time in milliseconds. */
function chat_now_ms(): int
{
    return (int) floor(microtime(true) * 1000);
}

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

/** Stores a message; returns its id. */
function chat_store_message(string $room, string $user, string $message): int
{
    $db = chat_db();
    $db->beginTransaction();
    $insert = $db->prepare(
        'INSERT INTO messages (room, user, message, created_at) VALUES (?, ?, ?, ?)'
    );
    $insert->execute([$room, $user, $message, time()]);
    $id = (int) $db->lastInsertId();
    chat_mark_present($room, $user, chat_now_ms());
    chat_clear_typing($room, $user);
    $db->commit();

    return $id;
}

/** The newest CHAT_HISTORY messages of the room, oldest first. */
function chat_history(string $room): array
{
    $select = chat_db()->prepare(
        'SELECT id, user, message, created_at FROM messages'
        . ' WHERE room = ? ORDER BY id DESC LIMIT ' . CHAT_HISTORY
    );
    $select->execute([$room]);

    return array_reverse($select->fetchAll());
}

/** A prepared query for the messages after a given id, oldest first. */
function chat_after_statement(): PDOStatement
{
    return chat_db()->prepare(
        'SELECT id, user, message, created_at FROM messages'
        . ' WHERE room = ? AND id > ? ORDER BY id LIMIT ' . CHAT_BATCH
    );
}

/** Rows as the front end gets them: escaped text, printed time. */
function chat_format_messages(array $rows): array
{
    $messages = [];
    foreach ($rows as $row) {
        $messages[] = [
            'id'      => (int) $row['id'],
            'user'    => chat_html($row['user']),
            'message' => chat_html($row['message']),
            'time'    => date('Y-m-d H:i:s', (int) $row['created_at']),
        ];
    }
    return $messages;
}

/* ------------------------------------------------------------------ */
/* Presence and typing                                                 */
/* ------------------------------------------------------------------ */

function chat_mark_present(string $room, string $user, int $nowMs): void
{
    $upsert = chat_db()->prepare(
        'INSERT INTO presence (room, user, seen_ms) VALUES (?, ?, ?)'
        . ' ON CONFLICT(room, user) DO UPDATE SET seen_ms = excluded.seen_ms'
    );
    $upsert->execute([$room, $user, $nowMs]);
}

/** Users seen in the room within the last CHAT_PRESENCE_MS. */
function chat_count_present(string $room, int $nowMs): int
{
    $count = chat_db()->prepare(
        'SELECT COUNT(*) FROM presence WHERE room = ? AND seen_ms > ?'
    );
    $count->execute([$room, $nowMs - CHAT_PRESENCE_MS]);

    return (int) $count->fetchColumn();
}

function chat_set_typing(string $room, string $user, int $nowMs): void
{
    $upsert = chat_db()->prepare(
        'INSERT INTO typing (room, user, set_ms) VALUES (?, ?, ?)'
        . ' ON CONFLICT(room, user) DO UPDATE SET set_ms = excluded.set_ms'
    );
    $upsert->execute([$room, $user, $nowMs]);
}

function chat_clear_typing(string $room, string $user): void
{
    $delete = chat_db()->prepare('DELETE FROM typing WHERE room = ? AND user = ?');
    $delete->execute([$room, $user]);
}

/** The other users typing in the room now, sorted, unescaped. */
function chat_typing_users(string $room, string $user, int $nowMs): array
{
    $select = chat_db()->prepare(
        'SELECT user FROM typing WHERE room = ? AND user <> ? AND set_ms > ? ORDER BY user'
    );
    $select->execute([$room, $user, $nowMs - CHAT_TYPING_MS]);

    return $select->fetchAll(PDO::FETCH_COLUMN);
}
