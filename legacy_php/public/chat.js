/*
 * The chat front end (jQuery 1.12).
 *
 * - listenToRecive.php is long-polled in a loop that follows lastId; the
 *   first poll (lastId 0) brings the history. A new poll starts as soon as
 *   one answers, or 2 s after one fails (and 2 s after an empty history,
 *   since lastId 0 is never held).
 * - sendMessage.php on submit; the message shows up through the poll.
 * - isTyping.php: typing=1 when the user starts typing (repeated while they
 *   keep typing, as the server drops a flag after 5 s), typing=0 after 2 s
 *   without a keystroke or on send; polled every 2 s for the typing line.
 * - getNumberOfUsers.php every 5 s.
 *
 * The server escapes user names and messages, so they are inserted as HTML.
 * All URLs are relative: the app may live under any prefix.
 */
(function ($) {
  'use strict';

  var POLL_TIMEOUT_MS = 40000;
  var POLL_RETRY_MS = 2000;
  var TYPING_IDLE_MS = 2000;
  var TYPING_REFRESH_MS = 3000;
  var TYPING_POLL_MS = 2000;
  var ONLINE_POLL_MS = 5000;

  var nick = null;
  var room = pageParam('room');
  var lastId = 0;
  var typing = false;
  var typingSentAt = 0;
  var typingTimer = null;

  /* A parameter of the page's own URL, or null. */
  function pageParam(name) {
    var pairs = window.location.search.replace(/^\?/, '').split('&');
    var i, eq, key;
    for (i = 0; i < pairs.length; i++) {
      eq = pairs[i].indexOf('=');
      key = eq < 0 ? pairs[i] : pairs[i].slice(0, eq);
      if (decode(key) === name) {
        return eq < 0 ? '' : decode(pairs[i].slice(eq + 1));
      }
    }
    return null;
  }

  function decode(s) {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch (e) {
      return s;
    }
  }

  /* Request data, with the room when the page was given one. */
  function withRoom(data) {
    if (room) {
      data.room = room;
    }
    return data;
  }

  function notice(text) {
    $('#notice').text(text ? ' \u2014 ' + text : '');
  }

  /* The server's reason for a refused request, if it gave one. */
  function reason(xhr, fallback) {
    try {
      return $.parseJSON(xhr.responseText).error || fallback;
    } catch (e) {
      return fallback;
    }
  }

  /* ---- messages ---- */

  function addMessages(list) {
    var $list = $('#messages');
    $.each(list, function (i, m) {
      if (m.id <= lastId) {
        return;
      }
      lastId = m.id;
      $('<li class="message"></li>')
        .attr('data-id', m.id)
        .html('<span class="time">' + m.time + '</span> ' +
              '<b class="user">' + m.user + '</b>: ' +
              '<span class="text">' + m.message + '</span>')
        .appendTo($list);
    });
    $list.scrollTop($list[0].scrollHeight);
  }

  function poll() {
    $.ajax({
      url: 'listenToRecive.php',
      data: withRoom({ lastId: lastId, user: nick }),
      dataType: 'json',
      cache: false,
      timeout: POLL_TIMEOUT_MS
    }).done(function (list) {
      notice('');
      try {
        if ($.isArray(list)) {
          addMessages(list);
        }
      } finally {
        // lastId 0 is answered at once, even for an empty room: look again
        // in a while rather than in a tight loop.
        if (lastId === 0) {
          setTimeout(poll, POLL_RETRY_MS);
        } else {
          poll();
        }
      }
    }).fail(function (xhr) {
      notice(reason(xhr, 'connection lost, retrying\u2026'));
      setTimeout(poll, POLL_RETRY_MS);
    });
  }

  function send(e) {
    var $input = $('#message');
    var text = $input.val();
    e.preventDefault();
    if ($.trim(text) === '') {
      return;
    }
    $input.val('');
    $.post('sendMessage.php', withRoom({ user: nick, message: text }), null, 'json')
      .fail(function (xhr) {
        notice(reason(xhr, 'message not sent'));
        if ($input.val() === '') {
          $input.val(text);
        }
      });
    stopTyping();
  }

  /* ---- typing ---- */

  function showTyping(names) {
    if (!$.isArray(names)) {
      return;
    }
    if (names.length === 0) {
      $('#typing').html('');
    } else {
      $('#typing').html(names.join(', ') +
        (names.length === 1 ? ' is typing\u2026' : ' are typing\u2026'));
    }
  }

  function postTyping(flag) {
    return $.post('isTyping.php', withRoom({ user: nick, typing: flag ? 1 : 0 }), showTyping, 'json');
  }

  function pollTyping() {
    return $.post('isTyping.php', withRoom({ user: nick }), showTyping, 'json');
  }

  function onInput() {
    var now = new Date().getTime();
    if ($('#message').val() === '') {
      stopTyping();
      return;
    }
    if (!typing || now - typingSentAt >= TYPING_REFRESH_MS) {
      typing = true;
      typingSentAt = now;
      postTyping(true);
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(typingTimer);
    typingTimer = null;
    if (typing) {
      typing = false;
      postTyping(false);
    }
  }

  /* ---- users online ---- */

  function refreshOnline() {
    $.ajax({
      url: 'getNumberOfUsers.php',
      data: withRoom({}),
      dataType: 'text',
      cache: false
    }).done(function (body) {
      $('#online').text(parseInt(body, 10) || 0);
    });
  }

  /* ---- joining ---- */

  function join(e) {
    var value = $.trim($('#nick').val());
    e.preventDefault();
    if (value === '') {
      $('#nick').focus();
      return;
    }
    nick = value;
    $('#nick-form').hide();
    $('#me').text(nick);
    $('#chat').show();
    $('#message').focus();

    poll();
    // Count the users once we are marked present ourselves.
    pollTyping().always(refreshOnline);
    setInterval(pollTyping, TYPING_POLL_MS);
    setInterval(refreshOnline, ONLINE_POLL_MS);
  }

  $(function () {
    $('#room-name').text('#' + (room || 'main'));
    $('#nick-form').on('submit', join);
    $('#send-form').on('submit', send);
    $('#message').on('input', onInput);
  });
}(jQuery));
