<?php
/*
 * getNumberOfUsers.php: how many users were seen in the room in the last
 * 30 seconds. Param: room. The body is the bare number, sent with PHP's
 * default Content-Type (text/html; charset=UTF-8).
 */

declare(strict_types=1);

require __DIR__ . '/../lib/chat.php';

chat_begin();

$room = chat_room();

echo chat_count_present($room, chat_now_ms());
