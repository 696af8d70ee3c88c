<?php
/*
 * stopTyping.php: userId no longer types. Param: userId. Empty body.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/omegle.php';

omegle_begin();

omegle_run('DELETE FROM typing WHERE id = ?', [omegle_int('userId')]);
