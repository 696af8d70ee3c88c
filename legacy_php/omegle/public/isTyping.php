<?php
/*
 * isTyping.php: whether the stranger types. Param: strangerId.
 * Body: "typing", or empty.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

$typing = omegle_run('SELECT 1 FROM typing WHERE id = ? LIMIT 1', [omegle_int('strangerId')])
    ->fetchColumn();

echo $typing === false ? '' : 'typing';
