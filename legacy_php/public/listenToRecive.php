<?php
/*
 * listenToRecive.php: the long poll (the name is the old spelling; the
 * front end depends on it).
 * Params: lastId, user (optional: marks the user present), room.
 *
 * lastId 0 (or absent): the newest messages of the room at once.
 * lastId > 0: the messages after it as soon as there are any, checking the
 * database every 250 ms; [] when the hold time passes without one.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/chat.php';

chat_begin();

$room   = chat_room();
$user   = chat_user(false);
$lastId = chat_last_id();

if ($user !== null) {
    chat_mark_present($room, $user, chat_now_ms());
}

if ($lastId === 0) {
    chat_json(chat_format_messages(chat_history($room)));
    exit;
}

$hold = chat_hold();
// The limit counts CPU time on Linux, so sleeping hardly uses it up; it is
// here for the platforms where it counts wall time.
set_time_limit((int) ceil($hold) + 30);
// Stop the script if the browser goes away (PHP notices when it writes).
ignore_user_abort(false);

$deadline = microtime(true) + $hold;
$after    = chat_after_statement();

while (true) {
    $after->execute([$room, $lastId]);
    $rows = $after->fetchAll();
    if ($rows) {
        break;
    }
    $left = $deadline - microtime(true);
    if ($left <= 0) {
        break;
    }
    usleep((int) ceil(min(CHAT_POLL_US, $left * 1000000)));
}

chat_json(chat_format_messages($rows));
