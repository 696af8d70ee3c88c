<?php
/*
 * Foreign writer for the load tool's `foreign` mode: for each line
 * "room<TAB>user<TAB>message" on stdin, stores the message exactly as the legacy
 * sendMessage.php does (chat_store_message() of legacy_php/lib/chat.php: one
 * transaction, the same INSERT, presence and typing statements), then prints
 * "<microtime(true) right after the commit> <id>".
 * CHAT_DB names the database, as for the PHP app.
 */

declare(strict_types=1);

require __DIR__ . '/../../legacy_php/lib/chat.php';

while (($line = fgets(STDIN)) !== false) {
    [$room, $user, $message] = explode("\t", rtrim($line, "\n"), 3);
    $id = chat_store_message($room, $user, $message);
    $committed = microtime(true);
    printf("%.6f %d\n", $committed, $id);
    fflush(STDOUT);
}
