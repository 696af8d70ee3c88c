<?php
/*
 * sendMessage.php: stores a message.
 * Params: user, message, room (optional, default "main").
 * Answers {"status":"ok","id":<new id>}.
 */

declare(strict_types=1);

require __DIR__ . '/../lib/chat.php';

chat_begin();

$room    = chat_room();
$user    = chat_user();
$message = chat_message();

// Stored as typed (trimmed); it is escaped when it is read.
$id = chat_store_message($room, $user, $message);

chat_json(['status' => 'ok', 'id' => $id]);
