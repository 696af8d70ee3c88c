<?php
/*
 * typing.php: marks userId as typing (one row at most). Param: userId.
 * Empty body.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

$userId = omegle_int('userId');

// One statement, so that two key presses at once still make one row.
omegle_run(
    'INSERT INTO typing (id) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM typing WHERE id = ?)',
    [$userId, $userId]
);
