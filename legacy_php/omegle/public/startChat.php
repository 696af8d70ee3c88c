<?php
/*
 * startChat.php: a new visitor, waiting for a stranger. No params.
 * Body: the new user's id.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

omegle_run("INSERT INTO users (inchat) VALUES ('N')");

echo (int) omegle_db()->lastInsertId();
