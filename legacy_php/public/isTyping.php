<?php
/*
 * isTyping.php: sets or clears the user's typing flag and tells who else
 * is typing. Params: user, typing (optional: 1 sets, 0 clears, absent
 * leaves it), room. Answers a JSON array of the other typing users' names.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/chat.php';

chat_begin();

$room   = chat_room();
$user   = chat_user();
$typing = chat_typing();

$now = chat_now_ms();
$db  = chat_db();

$db->beginTransaction();
chat_mark_present($room, $user, $now);
if ($typing === 1) {
    chat_set_typing($room, $user, $now);
} elseif ($typing === 0) {
    chat_clear_typing($room, $user);
}
$db->commit();

chat_json(array_map('chat_html', chat_typing_users($room, $user, $now)));
