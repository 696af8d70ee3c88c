<?php
/*
 * randomChat.php: pairs userId with one random other waiting user.
 * Param: userId. Body: the partner's id (the same again on a repeated call
 * once paired), or 0 when nobody else is waiting.
 *
 * No check that userId exists or waits: as in the original, any id that asks
 * is paired. One transaction, so that two users never pick the same stranger.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

$userId = omegle_int('userId');

echo omegle_transaction(static function () use ($userId): int {
    $partner = omegle_run(
        'SELECT randomUserId FROM chats WHERE userId = ? ORDER BY rowid LIMIT 1',
        [$userId]
    )->fetchColumn();
    if ($partner !== false) {
        return (int) $partner;
    }

    $stranger = omegle_run(
        "SELECT id FROM users WHERE inchat = 'N' AND id <> ? ORDER BY RANDOM() LIMIT 1",
        [$userId]
    )->fetchColumn();
    if ($stranger === false) {
        return 0;
    }
    $stranger = (int) $stranger;

    omegle_run(
        'INSERT INTO chats (userId, randomUserId) VALUES (?, ?), (?, ?)',
        [$userId, $stranger, $stranger, $userId]
    );
    omegle_run("UPDATE users SET inchat = 'Y' WHERE id IN (?, ?)", [$userId, $stranger]);

    return $stranger;
});
