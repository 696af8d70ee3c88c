<?php
/*
 * leaveChat.php: userId leaves: its users row and every chats row naming it
 * go, so the partner's next listenToReceive.php answers ||--noResult--||.
 * Param: userId. Empty body. Queued messages and the typing row stay.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

$userId = omegle_int('userId');

omegle_transaction(static function () use ($userId): void {
    omegle_run('DELETE FROM users WHERE id = ?', [$userId]);
    omegle_run('DELETE FROM chats WHERE userId = ? OR randomUserId = ?', [$userId, $userId]);
});
