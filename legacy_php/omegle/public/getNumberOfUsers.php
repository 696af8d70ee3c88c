<?php
/*
 * getNumberOfUsers.php: how many users rows there are (waiting or chatting;
 * a user who left with leaveChat.php no longer counts). No params.
 * Body: the number.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

echo (int) omegle_run('SELECT COUNT(*) FROM users')->fetchColumn();
