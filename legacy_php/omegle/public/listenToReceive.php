<?php
/*
 * listenToReceive.php: the next message for userId, one per poll.
 * Param: userId. Body:
 *   ||--noResult--||  userId has no chats row (the partner left),
 *   the message raw   the oldest undelivered one, which moves to oldmsgs,
 *   empty             nothing queued.
 *
 * This version answers at once; the page asks again 2 s after each answer.
 * Taking a message is one write transaction (BEGIN IMMEDIATE), so two tabs of
 * one user never both get it and a message is never lost between them.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

$userId = omegle_int('userId');

echo omegle_transaction(static function () use ($userId): string {
    $chatting = omegle_run('SELECT 1 FROM chats WHERE userId = ? LIMIT 1', [$userId])->fetchColumn();
    if ($chatting === false) {
        return OMEGLE_NO_RESULT;
    }

    // sentdate has a resolution of one second: ties are broken by id.
    $message = omegle_run(
        'SELECT id, userId, randomUserId, msg FROM msgs WHERE randomUserId = ?'
        . ' ORDER BY sentdate, id LIMIT 1',
        [$userId]
    )->fetch();
    if ($message === false) {
        return '';
    }

    omegle_run('DELETE FROM msgs WHERE id = ?', [$message['id']]);
    omegle_run(
        'INSERT INTO oldmsgs (userId, randomUserId, msg) VALUES (?, ?, ?)',
        [(int) $message['userId'], (int) $message['randomUserId'], (string) $message['msg']]
    );

    return (string) $message['msg'];
});
