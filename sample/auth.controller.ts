import { Body, Controller, Delete, Get, HttpCode, NotFoundException, Param, Post, UnauthorizedException, UseGuards } from '@nestjs/common';
import { IsString, MaxLength, MinLength } from 'class-validator';
import { Session, SessionGuard, SessionService } from '../lib/index.js';

export class LoginDto {
  @IsString()
  @MinLength(1)
  @MaxLength(100)
  username!: string;

  @IsString()
  @MaxLength(200)
  password!: string;
}

/** The demo accepts this password for any user name. */
const DEMO_PASSWORD = 'demo';

@Controller('auth')
export class AuthController {
  constructor(private readonly sessions: SessionService) {}

  @Post('login')
  @HttpCode(200)
  async login(@Body() body: LoginDto, @Session() session: Session) {
    if (body.password !== DEMO_PASSWORD) throw new UnauthorizedException('Wrong user name or password.');
    // A new id on sign-in: an id planted before sign-in (session fixation) is worth nothing after.
    await session.rotateId();
    session.userId = body.username;
    return { userId: body.username };
  }

  @Post('logout')
  @HttpCode(204)
  async logout(@Session() session: Session) {
    await session.destroy();
  }

  @Get('sessions')
  @UseGuards(SessionGuard)
  list(@Session() session: Session) {
    return this.sessions.list(session.userId!, session.id);
  }

  @Delete('sessions')
  @UseGuards(SessionGuard)
  revokeOthers(@Session() session: Session) {
    return this.sessions.revokeOthers(session.userId!, session.id);
  }

  /** Ends one of this user's sessions, by the hashed id `GET /auth/sessions` lists. */
  @Delete('sessions/:id')
  @UseGuards(SessionGuard)
  async revokeOne(@Session() session: Session, @Param('id') id: string) {
    const result = await this.sessions.revoke(session.userId!, id);
    if (result.revoked === 0) throw new NotFoundException('No session of yours has this id.');
    return result;
  }
}
