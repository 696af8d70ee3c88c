<?php
/*
 * sendMsg.php: queues msg for strangerId. Params: userId, strangerId, msg.
 * Empty body.
 *
 * The page puts the text in the URL unencoded: what PHP decoded is stored as
 * it is (no trim, no escaping; the recipient's page inserts it as HTML).
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

omegle_run(
    'INSERT INTO msgs (userId, randomUserId, msg) VALUES (?, ?, ?)',
    [omegle_int('userId'), omegle_int('strangerId'), omegle_text('msg')]
);
